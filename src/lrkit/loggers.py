"""Send what lrkit measures to the trackers people read: TensorBoard, MLflow, Weights & Biases.

A logger is anything with ``log_metrics(metrics, step)``, ``log_params(params)`` and
``close()`` (:class:`Logger`); three adapters ship here, each importing its library only
when built (extras ``lrkit[tensorboard]``, ``lrkit[mlflow]``, ``lrkit[wandb]``). Nothing
needs a network: TensorBoard writes event files, MLflow a local store, W&B runs offline by
default.

Names are shared by every entry point, so live and post-hoc logs line up:

- range test (:meth:`lrkit.FinderResult.log`): ``finder/lr``, ``finder/loss``,
  ``finder/smoothed`` (and ``finder/val_loss``) at step = point index; more runs under
  ``finder/run1/...``; the suggestions as params.
- training (``fit(..., loggers=[...])`` and :func:`lrkit.sweeps.mirror`): ``train/lr``,
  ``train/loss`` at step = optimizer step (from 0); ``epoch/train_loss``, ``epoch/val_loss``
  and each metric as ``epoch/<name>`` at step = epoch (from 1).
- a schedule (:func:`log_schedule`): ``schedule/lr`` (and ``schedule/momentum``).

Each metric name has its own x axis (``step``): TensorBoard and MLflow keep one series per
name; the W&B adapter declares ``<prefix>/step`` as the x axis of ``<prefix>/*``.

>>> from lrkit import find_lr, fit
>>> res = find_lr(model, opt, train, loss, num_steps=20, progress=False)
>>> res.log("tensorboard", log_dir="runs/finder")                  # doctest: +ELLIPSIS
<lrkit.loggers.TensorBoardLogger object at ...>
>>> history = fit(model, opt, train, loss, epochs=1, loggers=["tensorboard"], progress=False)

``"mlflow"`` and ``"wandb"`` are used the same way (``res.log("mlflow", tracking_uri=...)``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from lrkit.finder.result import FinderResult
    from lrkit.schedules import Schedule

__all__ = [
    "LOGGERS",
    "FitLog",
    "Logger",
    "MLflowLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "log_finder",
    "log_schedule",
    "make_logger",
    "opened",
]


@runtime_checkable
class Logger(Protocol):
    """Where lrkit sends metrics: one tracked run."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record each ``name: value`` at x = ``step`` (each name is its own series)."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's settings (hyperparameters); values are shown as given."""

    def close(self) -> None:
        """Flush and finish the run."""


def _missing(library: str, extra: str) -> ImportError:
    return ImportError(f"{library} is not installed: pip install 'lrkit[{extra}]'")


def _plain(value: Any) -> bool | int | float | str:
    """A value every tracker takes as a param: numbers and strings as they are, else text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics as floats, without ``None`` and NaN/inf (a diverged step's loss), which
    would only break the trackers' axes."""
    out = {k: float(v) for k, v in metrics.items() if v is not None}
    return {k: v for k, v in out.items() if math.isfinite(v)}


class TensorBoardLogger:
    """Event files under ``log_dir`` (``log_dir/run_name`` with a run name), read by TensorBoard.

    Params go to TensorBoard's HParams dashboard (so several runs under one ``log_dir`` show
    as a table and parallel coordinates) and, as a table, to the Text tab.
    """

    def __init__(self, log_dir: str | Path = "runs/lrkit", *, run_name: str | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch raises this when tensorboard is missing
            raise _missing("tensorboard", "tensorboard") from exc
        self.log_dir = Path(log_dir) / run_name if run_name else Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in _values(metrics).items():
            self._writer.add_scalar(name, value, global_step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        plain = {k: _plain(v) for k, v in params.items()}
        _, session_start, _ = hparams(plain, {})  # type: ignore[no-untyped-call]
        # the session summary goes into this run's own file (add_hparams would open a subrun)
        self._writer._get_file_writer().add_summary(session_start)  # type: ignore[no-untyped-call]
        rows = "\n".join(f"| {k} | {v} |" for k, v in plain.items())
        self._writer.add_text("params", f"| param | value |\n|---|---|\n{rows}")

    def close(self) -> None:
        self._writer.close()


class MLflowLogger:
    """One MLflow run in ``experiment`` at ``tracking_uri`` (e.g. ``sqlite:///mlflow.db``).

    Talks to its own ``MlflowClient``: the global active run is left alone. Metrics are sent
    in batches (every ``batch`` values and on :meth:`close`). MLflow params are write-once:
    logging a different value for a name already logged is an error of MLflow's.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        experiment: str = "lrkit",
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        batch: int = 1000,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise _missing("mlflow", "mlflow") from exc
        self._client = MlflowClient(tracking_uri=tracking_uri)
        found = self._client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self._client.create_experiment(experiment)
        run = self._client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id: str = run.info.run_id
        self.experiment_id: str = experiment_id
        self._batch = batch
        self._pending: list[Any] = []

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, v, now, step) for k, v in _values(metrics).items()]
        if len(self._pending) >= self._batch:
            self._flush()

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self._flush()
        items = [Param(k, str(_plain(v))) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def _flush(self) -> None:
        while self._pending:  # MLflow takes at most 1000 metrics a batch
            chunk, self._pending = self._pending[:1000], self._pending[1000:]
            self._client.log_batch(self.run_id, metrics=chunk)

    def close(self) -> None:
        self._flush()
        self._client.set_terminated(self.run_id)


class WandbLogger:
    """One Weights & Biases run, offline by default (``mode="offline"``: files under ``dir``,
    uploaded later with ``wandb sync`` if wanted).

    Each metric prefix gets its own x axis: ``train/loss`` is plotted against ``train/step``,
    ``epoch/val_loss`` against ``epoch/step``, so series logged at different rates (or, by
    :func:`lrkit.sweeps.mirror`, one after the other) never collide on W&B's own step.
    """

    def __init__(
        self,
        project: str = "lrkit",
        *,
        run_name: str | None = None,
        dir: str | Path | None = None,
        mode: str = "offline",
        **init_kwargs: Any,
    ) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise _missing("wandb", "wandb") from exc
        if dir is not None:
            Path(dir).mkdir(parents=True, exist_ok=True)
        init: Any = wandb.init
        self.run = init(project=project, name=run_name, dir=None if dir is None else str(dir),
                              mode=mode, reinit="create_new", **init_kwargs)  # fmt: skip
        self._axes: set[str] = set()

    def _axis(self, name: str) -> str:
        prefix = name.rsplit("/", 1)[0] if "/" in name else ""
        axis = f"{prefix}/step" if prefix else "step"
        if axis not in self._axes:
            self._axes.add(axis)
            self.run.define_metric(axis, hidden=True)
            self.run.define_metric(f"{prefix}/*" if prefix else "*", step_metric=axis)
        return axis

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        values: dict[str, float] = _values(metrics)
        row: dict[str, float] = {self._axis(name): step for name in values}
        row.update(values)
        self.run.log(row)

    def log_params(self, params: Mapping[str, Any]) -> None:
        config: Any = self.run.config
        config.update({k: _plain(v) for k, v in params.items()}, allow_val_change=True)

    def close(self) -> None:
        self.run.finish()


LOGGERS: dict[str, type[Any]] = {
    "tensorboard": TensorBoardLogger,
    "mlflow": MLflowLogger,
    "wandb": WandbLogger,
}
"""The adapters by name, as ``make_logger`` and the ``loggers=`` arguments take them."""


def make_logger(name: str, **kwargs: Any) -> Logger:
    """The adapter called ``name`` (``tensorboard``, ``mlflow``, ``wandb``), built with kwargs."""
    if name not in LOGGERS:
        raise ValueError(f"unknown logger {name!r}; choose one of {', '.join(LOGGERS)}")
    made: Logger = LOGGERS[name](**kwargs)
    return made


@contextmanager
def opened(loggers: Logger | str | Sequence[Logger | str], **kwargs: Any) -> Iterator[list[Logger]]:
    """The loggers to write to: names are built (with ``kwargs``) and closed on exit; logger
    objects are used as given and left open (whoever made them closes them)."""
    items = [loggers] if isinstance(loggers, str) or not isinstance(loggers, Sequence) else loggers
    out: list[Logger] = []
    owned: list[Logger] = []
    try:
        for item in items:
            if isinstance(item, str):
                owned.append(make_logger(item, **kwargs))
                out.append(owned[-1])
            elif isinstance(item, Logger):
                out.append(item)
            else:
                raise TypeError(
                    "a logger is a name (tensorboard, mlflow, wandb) or an object with "
                    f"log_metrics, log_params and close (got {type(item).__name__})"
                )
        yield out
    finally:
        for logger in owned:
            logger.close()


def log_finder(logger: Logger, result: FinderResult, prefix: str = "finder") -> None:
    """A range test's settings, suggestions and curves (see the module docstring's names)."""
    params: dict[str, Any] = {
        f"{prefix}/method": result.method,
        f"{prefix}/suggestion": result.suggestion,
        f"{prefix}/for_schedule": result.for_schedule,
        f"{prefix}/num_steps": result.num_steps,
        f"{prefix}/runs": result.runs,
        f"{prefix}/stop_reason": result.stop_reason,
    }
    params.update({f"{prefix}/suggestion/{k}": v for k, v in result.suggestions.items()})
    logger.log_params(params)
    for index, curve in enumerate(result.curves):
        base = prefix if index == 0 else f"{prefix}/run{index}"
        for i, (lr, loss, smooth) in enumerate(zip(curve.lrs, curve.losses, curve.smoothed,
                                                   strict=True)):  # fmt: skip
            point = {f"{base}/lr": lr, f"{base}/loss": loss, f"{base}/smoothed": smooth}
            if curve.val_losses is not None and i < len(curve.val_losses):
                point[f"{base}/val_loss"] = curve.val_losses[i]
            logger.log_metrics(point, i)


def log_schedule(
    logger: Logger, schedule: Schedule, total_steps: int, prefix: str = "schedule"
) -> None:
    """A schedule's LR (and momentum, when it has one) at steps ``0 .. total_steps - 1``."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1 (got {total_steps!r})")
    logger.log_params({f"{prefix}/spec": schedule.to_spec(), f"{prefix}/total_steps": total_steps})
    momentum = schedule.momentum_schedule()
    for t in range(total_steps):
        point = {f"{prefix}/lr": schedule.lr_at(t)}
        if momentum is not None:
            point[f"{prefix}/momentum"] = momentum.lr_at(t)
        logger.log_metrics(point, t)


class FitLog:
    """The ``fit(..., loggers=...)`` hook: opens the loggers, logs each step and epoch."""

    def __init__(self, loggers: Sequence[Logger | str], params: Mapping[str, Any]) -> None:
        self._context = opened(list(loggers)) if loggers else None
        self._loggers: list[Logger] = []
        self._params = params

    def __enter__(self) -> FitLog:
        if self._context is not None:
            self._loggers = self._context.__enter__()
            for logger in self._loggers:
                logger.log_params(self._params)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)

    def step(self, index: int, lr: float, loss: float) -> None:
        for logger in self._loggers:
            logger.log_metrics({"train/lr": lr, "train/loss": loss}, index)

    def epoch(self, summary: Mapping[str, float]) -> None:
        metrics = {f"epoch/{k}": v for k, v in summary.items() if k != "epoch"}
        for logger in self._loggers:
            logger.log_metrics(metrics, int(summary["epoch"]))
