"""Mirror a sweep's store into a tracker: one tracked run per finished stored run.

Post hoc, from the store alone, so any sweep (any executor, resumed or not) can be browsed in
TensorBoard's HParams view, MLflow's run table or W&B's parallel coordinates:

>>> import lrkit
>>> res = lrkit.sweep("digits-mlp", lrs=[0.1], epochs=1, store="runs/digits", progress=False)
>>> len(mirror("runs/digits", "tensorboard", log_dir="runs/tb"))  # one TensorBoard run per run
1

``mirror("runs/digits", "mlflow", tracking_uri="sqlite:///mlflow.db")`` fills an MLflow store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lrkit.loggers import Logger, make_logger
from lrkit.sweeps.store import RunRecord, Store

__all__ = ["mirror"]


def _params(record: RunRecord) -> dict[str, Any]:
    params = {f"run/{k}": v for k, v in record.config.items()}
    params.update({"run/id": record.id, "run/sweep": record.sweep,
                   "run/diverged": record.diverged,
                   "run/stop_reason": record.summary.get("stop_reason", "")})  # fmt: skip
    return params


def mirror(
    store: Store | str | Path,
    logger: str | Callable[[str], Logger],
    *,
    sweep: str | None = None,
    **kwargs: Any,
) -> list[str]:
    """Log every finished run of ``store`` (of ``sweep``, or all) as its own tracked run.

    ``logger``: a name (``"tensorboard"``, ``"mlflow"``, ``"wandb"``), built per run with
    ``run_name=<run id>`` and ``kwargs`` (e.g. ``log_dir=``: each run then writes to
    ``log_dir/<run id>``), or a function ``run id -> Logger``. Each run gets its config as
    params (``run/lr``, ``run/schedule``, ``run/seed``, …) and its metrics under the names
    ``fit(loggers=...)`` uses (``train/lr``, ``train/loss`` per step; ``epoch/<name>`` per
    epoch). Runs not finished (pending, running, failed) are left out. Every call makes new
    tracked runs. Returns the ids of the runs mirrored.
    """
    if not isinstance(store, Store):
        if not (Path(store) / Store.FILENAME).exists():
            raise ValueError(f"no sweep store at {store} (expected {Store.FILENAME} there)")
        store = Store(store)
    if not (isinstance(logger, str) or callable(logger)):
        raise TypeError(f"logger must be a name or a function run id -> Logger (got {logger!r})")
    done: list[str] = []
    for record in store.runs(sweep):
        if record.status != "done":
            continue
        target = (make_logger(logger, run_name=record.id, **kwargs) if isinstance(logger, str)
                  else logger(record.id))  # fmt: skip
        try:
            target.log_params(_params(record))
            steps = store.metrics(record.id, "step")
            for i, (lr, loss) in enumerate(zip(steps.get("lr", []), steps.get("loss", []),
                                               strict=True)):  # fmt: skip
                target.log_metrics({"train/lr": lr, "train/loss": loss}, i)  # type: ignore[dict-item]
            epochs = store.metrics(record.id, "epoch")
            for i in range(max((len(v) for v in epochs.values()), default=0)):
                row = {f"epoch/{k}": v[i] for k, v in epochs.items() if i < len(v)}
                target.log_metrics(row, i + 1)  # type: ignore[arg-type]
        finally:
            target.close()
        done.append(record.id)
    return done
