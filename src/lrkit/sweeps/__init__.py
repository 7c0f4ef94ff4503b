"""Sweeps that prove a choice: LR × schedule × optimizer × seed × fold, stored and resumable.

>>> res = lrkit.sweep("digits-mlp", lrs=logspace(1e-3, 1, 7), seeds=(0, 1, 2),  # doctest: +SKIP
...                   epochs=5, store="runs/digits")
>>> res.report                                                            # doctest: +SKIP
PosixPath('runs/digits/report.html')
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lrkit.sweeps.executors import EXECUTORS, execute
from lrkit.sweeps.run import LOCAL_TASKS
from lrkit.sweeps.spec import RunConfig, SweepSpec, logspace
from lrkit.sweeps.store import RunRecord, Store
from lrkit.tasks import Task

__all__ = ["RunConfig", "Store", "SweepResult", "SweepSpec", "logspace", "run_spec", "sweep"]


@dataclass
class SweepResult:
    """What a sweep did: its store, every run's record, the failures, and the report."""

    store: Store
    name: str
    runs: list[RunRecord]
    ran: int
    skipped: int
    failures: list[RunRecord] = field(default_factory=list)
    report: Path | None = None
    lrs: list[float] = field(default_factory=list)


def _around_finder(spec: SweepSpec, task: Task, progress: bool) -> list[float]:
    """n points from suggestion/10 to suggestion×3, around the finder's LR."""
    from lrkit.finder import find_lr

    seed = spec.seeds[0]
    model = task.make_model(seed)
    optimizer = task.make_optimizer(model, optimizer=spec.optimizers[0])
    res = find_lr(model, optimizer, task.train_loader(seed), task.criterion, seed=seed,
                  progress=progress)  # fmt: skip
    lr = res.suggestion or res.suggestions.get("minimum")
    if lr is None:
        raise ValueError(f"the finder gave no suggestion ({res.notes['auto']}); list the LRs")
    return logspace(lr / 10, lr * 3, spec.finder_points())


def _error_text(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip()


def sweep(
    task: str | Task,
    *,
    lrs: Sequence[float] | str,
    epochs: int,
    schedules: Sequence[str] = ("constant",),
    optimizers: Sequence[str] = ("sgd",),
    seeds: Sequence[int] = (0,),
    folds: int | Sequence[int] | None = None,
    n_folds: int = 5,
    executor: str = "serial",
    store: str | Path = "runs/sweep",
    workers: int | None = None,
    address: str | None = None,
    data_dir: str | None = None,
    name: str | None = None,
    progress: bool = True,
    report: bool = True,
) -> SweepResult:
    """Run every configuration of the grid once, store it, and write the report.

    ``lrs``: a list (see :func:`logspace`) or ``"around-finder[:N]"``. ``schedules``: bare
    names filled with each run's LR and length (``constant``, ``cosine``, ``one_cycle``,
    ``wsd``, ``warmup_cosine``, ``linear``) or full specs. ``folds``: ``None`` (the task's
    split), ``n`` (all n folds) or a list of fold indices. ``executor``: ``"serial"``,
    ``"processes"`` (``workers`` local processes) or ``"ray"`` (``address`` of a cluster, or
    a local one). ``store`` is a directory holding ``lrkit.db`` and ``report.html``.

    Re-running resumes: finished runs are skipped, runs left behind by a killed process are
    redone. A run that raises is recorded as failed with its error; the others go on.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)} (got {executor!r})")
    task_obj: Task | None = None
    if isinstance(task, Task):
        if executor != "serial":
            raise ValueError(
                f"a Task object runs only with executor='serial'; for {executor!r} pass an "
                "importable 'module.path:function' that returns it"
            )
        task_obj, task = task, task.name
    spec = SweepSpec(
        task=task if task_obj is None else "local:" + task, lrs=lrs, epochs=epochs,
        schedules=tuple(schedules), optimizers=tuple(optimizers), seeds=tuple(seeds),
        folds=folds, n_folds=n_folds, data_dir=data_dir, name=name or Path(store).name,
    )  # fmt: skip
    if task_obj is not None:
        LOCAL_TASKS[spec.task] = task_obj
    return run_spec(spec, executor=executor, store=store, workers=workers, address=address,
                    progress=progress, report=report)  # fmt: skip


def run_spec(
    spec: SweepSpec,
    *,
    executor: str = "serial",
    store: str | Path = "runs/sweep",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    report: bool = True,
) -> SweepResult:
    """Run a validated :class:`SweepSpec` (what :func:`sweep` and ``lrkit sweep`` call)."""
    from tqdm.auto import tqdm

    from lrkit.sweeps.run import task_for

    db = Store(store)
    lrs: list[float]
    if isinstance(spec.lrs, str):
        probe = RunConfig(spec.task, 1.0, "constant", spec.optimizers[0], spec.seeds[0], None,
                          spec.n_folds, spec.epochs, spec.data_dir)  # fmt: skip
        lrs = _around_finder(spec, task_for(probe), progress)
    else:
        lrs = [float(x) for x in spec.lrs]
    configs = spec.expand(lrs)
    record = spec.to_dict() | {"resolved_lrs": lrs}
    db.register(spec.name, record, configs)
    by_id = {c.id: c for c in configs}
    todo = db.claim([c.id for c in configs])
    ran = 0
    with tqdm(total=len(todo), desc=f"sweep {spec.name}", disable=not progress) as bar:
        failed = 0
        for run_id, outcome in execute(executor, [by_id[i] for i in todo], workers, address):
            if isinstance(outcome, BaseException):
                db.fail(run_id, _error_text(outcome))
                failed += 1
            else:
                db.finish(run_id, outcome)
            ran += 1
            bar.update(1)
            bar.set_postfix(failed=failed, refresh=False)
    records = db.runs(spec.name)
    result = SweepResult(
        store=db,
        name=spec.name,
        runs=records,
        ran=ran,
        skipped=len(configs) - len(todo),
        failures=[r for r in records if r.status == "failed"],
        lrs=lrs,
    )
    if report and any(r.status == "done" for r in records):
        from lrkit.report.sweep import write_sweep_report

        result.report = write_sweep_report(db, spec.name, db.directory / "report.html")
    return result
