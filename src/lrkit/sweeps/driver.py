"""The sweep driver: expand the grid, claim runs in the store, run them, record each outcome.

:func:`run_spec` runs a validated grid and returns a :class:`SweepResult`; :func:`sweep` is
the one-call form that also writes the report from the store.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lrkit.optimizers import check_batched
from lrkit.sweeps.executors import check_executor, execute
from lrkit.sweeps.run import TaskResolver
from lrkit.sweeps.spec import RunConfig, SweepSpec, logspace
from lrkit.sweeps.store import HEARTBEAT_S, RunRecord, Store
from lrkit.tasks import Task

__all__ = ["IN_PROCESS", "SweepResult", "report_path", "run_spec", "sweep"]

IN_PROCESS = ("serial", "vectorized")
"""Executors that run in the calling process, and so can run a Task object."""
LOCAL = "local:"
"""Prefix of a task name that stands for a Task object handed to :func:`sweep`."""


@dataclass
class SweepResult:
    """What a sweep did: its store, every run's record, the failures, and the report.

    ``name`` is the sweep's id in the store (``<spec name>-<hash of the spec>``); ``ran``:
    runs this call ran; ``skipped``: runs done before it; ``elsewhere``: ``{run id: owner}``
    of the runs another live process holds (they were left to it).
    """

    store: Store
    name: str
    runs: list[RunRecord]
    ran: int
    skipped: int
    failures: list[RunRecord] = field(default_factory=list)
    report: Path | None = None
    lrs: list[float] = field(default_factory=list)
    elsewhere: dict[str, str] = field(default_factory=dict)
    failed_now: int = 0

    @property
    def all_failed(self) -> bool:
        """Every run this call ran failed (a sweep that cannot work: exit non-zero)."""
        return self.ran > 0 and self.failed_now == self.ran


def report_path(store: Store, sweep_id: str) -> Path:
    """Where a sweep's report lives: ``STORE/<sweep id>/report.html`` (one folder per sweep,
    with its ``sensitivity.png``)."""
    return store.directory / sweep_id / "report.html"


@contextmanager
def _heartbeat(db: Store) -> Iterator[None]:
    """Renew this process's claims every :data:`HEARTBEAT_S` while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a busy store: the next beat tries again
                db.heartbeat()

    thread = threading.Thread(target=beat, name="lrkit-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _around_finder(spec: SweepSpec, task: Task, progress: bool) -> list[float]:
    """n points from suggestion/10 to suggestion×3, around the finder's LR."""
    from lrkit.finder import find_lr

    seed = spec.seeds[0]
    model = task.make_model(seed)
    optimizer = task.make_optimizer(model, optimizer=spec.finder_optimizer())
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
    take_over: bool = False,
) -> SweepResult:
    """Run every configuration of the grid once, store it, and write the report.

    ``lrs``: a list (see :func:`logspace`) or ``"around-finder[:N]"``. ``schedules``: bare
    names filled with each run's LR and length (``constant``, ``cosine``, ``one_cycle``,
    ``wsd``, ``warmup_cosine``, ``linear``) or full specs. ``folds``: ``None`` (the task's
    split), ``n`` (all n folds) or a list of fold indices. ``executor``: ``"serial"``,
    ``"processes"`` (``workers`` local processes), ``"ray"`` (``address`` of a cluster, or
    a local one), ``"vectorized"`` or ``"auto"``. ``store`` is a directory holding
    ``lrkit.db`` and one folder per sweep, ``<sweep id>/report.html`` (the sweep id is
    ``<name>-<hash of the spec>``: an edited spec is a new sweep). ``report`` needs the
    ``report`` extra (plotly and matplotlib); without it the sweep stops before any run,
    asking for it or ``report=False``. ``take_over``: take runs another process claimed even
    if it looks alive (when you know it is gone).

    Re-running resumes: finished runs are skipped, runs left behind by a killed process are
    redone, runs another live process is running are left to it (``SweepResult.elsewhere``).
    A run that raises is recorded as failed with its error; the others go on.
    """
    check_executor(executor, workers, address)
    task_obj: Task | None = None
    if isinstance(task, Task):
        if executor not in IN_PROCESS:
            raise ValueError(
                f"a Task object runs only in this process (executor 'serial' or 'vectorized'); "
                f"for {executor!r} pass an importable 'module.path:function' that returns it"
            )
        task_obj, task = task, LOCAL + task.name
    spec = SweepSpec(
        task=task, lrs=lrs, epochs=epochs, schedules=tuple(schedules),
        optimizers=tuple(optimizers), seeds=tuple(seeds), folds=folds, n_folds=n_folds,
        data_dir=data_dir, name=name or Path(store).name,
    )  # fmt: skip
    if report:
        from lrkit.report.html import require_report_extras

        require_report_extras(skip="report=False")
    result = run_spec(spec, executor=executor, store=store, workers=workers, address=address,
                      progress=progress, task=task_obj, take_over=take_over)  # fmt: skip
    if report and any(r.status == "done" for r in result.runs):
        from lrkit.report.sweep import write_sweep_report

        result.report = write_sweep_report(result.store, result.name,
                                           report_path(result.store, result.name))  # fmt: skip
    return result


def run_spec(
    spec: SweepSpec,
    *,
    executor: str = "serial",
    store: str | Path = "runs/sweep",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    task: Task | None = None,
    take_over: bool = False,
) -> SweepResult:
    """Run a validated :class:`SweepSpec` and return what it did (no report: that is written
    from the store, by :func:`sweep` or ``lrkit sweep``).

    ``task``: the Task object a ``"local:<name>"`` spec stands for (what :func:`sweep` passes
    for a Task); the tasks are resolved afresh for every call. Everything is checked before
    the first claim: the executor and its settings, the task (imported and built), the store.
    """
    from tqdm.auto import tqdm

    check_executor(executor, workers, address)
    local: dict[str, Task] = {}
    if task is not None:
        if spec.task != LOCAL + task.name:
            raise ValueError(
                f"task= stands for the spec's task {LOCAL + task.name!r}, but the spec names "
                f"{spec.task!r}; build the spec with task={LOCAL + task.name!r}"
            )
        local[spec.task] = task
    tasks = TaskResolver(local)
    if executor == "vectorized":
        for config in spec.expand([1.0]):
            check_batched(config.optimizer, "executor='vectorized'",
                          "run this sweep with executor='processes' (or 'serial')")  # fmt: skip
    lrs: list[float]
    if isinstance(spec.lrs, str):
        probe = RunConfig(spec.task, 1.0, "constant", spec.finder_optimizer(), spec.seeds[0],
                          None, spec.n_folds, spec.epochs, spec.data_dir)  # fmt: skip
        lrs = _around_finder(spec, tasks(probe), progress)
    else:
        lrs = [float(x) for x in spec.lrs]
    configs = spec.expand(lrs)
    for config in {(c.fold,): c for c in configs}.values():
        tasks(config)  # the task builds (data found, folds valid) before any run is claimed
    db = Store(store)
    sweep_id = spec.sweep_id
    record = spec.to_dict() | {"resolved_lrs": lrs, "sweep_id": sweep_id}
    db.register(sweep_id, record, configs)
    by_id = {c.id: c for c in configs}
    ids = [c.id for c in configs]
    done_before = {r.id for r in db.runs(sweep_id) if r.status == "done"}
    todo = db.claim(ids, take_over=take_over)
    elsewhere = db.running_elsewhere([i for i in ids if i not in todo])
    ran = failed = 0
    # before any thread of ours starts (the progress bar's, the heartbeat): forked pool
    # workers are forked here
    outcomes = execute(executor, [by_id[i] for i in todo], tasks, workers, address)
    with (
        contextlib.closing(outcomes),
        tqdm(total=len(todo), desc=f"sweep {sweep_id}", disable=not progress) as bar,
        _heartbeat(db),
    ):
        for run_id, outcome in outcomes:
            if isinstance(outcome, BaseException):
                db.fail(run_id, _error_text(outcome))
                failed += 1
            else:
                db.finish(run_id, outcome)
            ran += 1
            bar.update(1)
            bar.set_postfix(failed=failed, refresh=False)
    records = db.runs(sweep_id)
    return SweepResult(
        store=db,
        name=sweep_id,
        runs=records,
        ran=ran,
        skipped=len(done_before & set(ids)),
        failures=[r for r in records if r.status == "failed"],
        lrs=lrs,
        elsewhere=elsewhere,
        failed_now=failed,
    )
