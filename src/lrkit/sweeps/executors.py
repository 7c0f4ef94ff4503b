"""Executors: where the runs of a sweep run. Each yields ``(run id, result or exception)``.

The driver (``lrkit.sweep``) writes the store; executors only run and return. Every executor
gets its tasks from the :class:`~lrkit.sweeps.run.TaskResolver` of the sweep call: serial and
vectorized use it, forked workers inherit it, Ray actors get a copy through the object store;
spawned workers (and actors whose tasks do not pickle) build their own for the pool's life.
"""

from __future__ import annotations

import ast
import os
import socket
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from lrkit.optimizers import DEFAULTS
from lrkit.sweeps.pool import ProcessBackend, RayBackend, pooled, start_method
from lrkit.sweeps.run import TaskResolver, run_config
from lrkit.sweeps.spec import RunConfig

EXECUTORS: dict[str, str] = {
    "serial": "one run after another in this process",
    "processes": "a pool of --workers local processes",
    "ray": "--workers Ray actors on a local cluster or the one at --address",
    "vectorized": "runs that differ only in LR and seed trained together (fit_many)",
    "auto": "vectorized on CUDA; else serial, with worker processes started only when the "
    "runs timed so far say they pay",
}
"""Executor names and what each does (the CLI's help is written from this table)."""
Outcome = tuple[str, dict[str, Any] | BaseException]
Outcomes = Generator[Outcome, None, None]


def serial(configs: Sequence[RunConfig], tasks: TaskResolver) -> Outcomes:
    """In this process, one run after another."""
    for cfg in configs:
        try:
            yield cfg.id, run_config(cfg, tasks)
        except Exception as exc:  # a failed run is recorded, the sweep goes on
            yield cfg.id, exc


def processes(
    configs: Sequence[RunConfig], tasks: TaskResolver, workers: int | None, *, auto: bool = False
) -> Outcomes:
    """A local pool of ``workers`` processes (default: one per CPU), kept for the whole
    sweep (see :mod:`lrkit.sweeps.pool`). Forked workers (Linux) are forked here, now, with
    ``tasks`` built: call this before starting any thread. Spawned ones start on first use,
    and this process runs runs too while they start."""
    size = min(workers or os.cpu_count() or 1, len(configs))
    backend = ProcessBackend(tasks, start_method())
    if backend.method == "fork":
        backend.fork_now(configs[0], size)
    return pooled(configs, tasks, backend, size, auto=auto)


def ray(
    configs: Sequence[RunConfig], tasks: TaskResolver, workers: int | None, address: str | None
) -> Outcomes:
    """Runs on ``workers`` Ray actors (default: the cluster's CPUs); ``address`` joins a
    running cluster, else a local one starts (and this process helps while it does). The
    actors get ``tasks`` as built here (no data load on the cluster) when they pickle."""
    backend = RayBackend(address, tasks)
    size = min(workers, len(configs)) if workers else 0
    return pooled(configs, tasks, backend, size)


def _group_key(cfg: RunConfig) -> tuple[Any, ...]:
    """Runs that can share one vectorized pass: same model, data, optimizer and schedule."""
    return (cfg.task, cfg.data_dir, cfg.fold, cfg.n_folds, cfg.optimizer, cfg.schedule,
            cfg.epochs)  # fmt: skip


def max_members_for(model: Any, device: Any, cap: int = 64) -> int:
    """How many members to train at once: all up to ``cap`` on a CPU; on CUDA, what fits in
    half the free memory at ~8× the parameter bytes plus 32 MB of activations each."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return cap
    free, _ = torch.cuda.mem_get_info(device)
    per_member = 8 * sum(p.numel() * p.element_size() for p in model.parameters()) + (32 << 20)
    return max(1, min(cap, int(0.5 * free // per_member)))


def vectorized(
    configs: Sequence[RunConfig], tasks: TaskResolver, max_members: int | None = None
) -> Outcomes:
    """Groups of runs that differ only in LR and seed, trained together with ``fit_many``.

    Each member keeps its own seed's initial weights and data order, so results equal the
    serial executor's up to floating-point rounding. Always the batched computation
    (``strategy="vmap"``), on CUDA when available, else the CPU; ``executor="auto"`` picks
    this executor only on CUDA, where it pays.
    """
    import socket

    import torch

    from lrkit.vectorized import fit_many

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    groups: dict[tuple[Any, ...], list[RunConfig]] = {}
    for cfg in configs:
        groups.setdefault(_group_key(cfg), []).append(cfg)
    for members in groups.values():
        task = tasks(members[0])
        size = max_members or max_members_for(task.make_model(0), device)
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            first = chunk[0]
            kwargs = task.optimizer_kwargs if first.optimizer == task.optimizer else {}
            try:
                histories = fit_many(
                    task.make_model, None, task.criterion, first.epochs,
                    member_loaders=[task.train_loader(c.seed) for c in chunk],
                    optimizer=first.optimizer, lrs=[c.lr for c in chunk],
                    seeds=[c.seed for c in chunk], schedule=first.schedule,
                    val_loader=task.val_loader(), metrics=(task.metric,), device=device,
                    strategy="vmap", progress=False, **kwargs,
                )  # fmt: skip
            except Exception as exc:
                for cfg in chunk:
                    yield cfg.id, exc
                continue
            for cfg, history in zip(chunk, histories, strict=True):
                yield cfg.id, {"id": cfg.id, "history": history.to_dict(),
                               "host": socket.gethostname()}  # fmt: skip


def choose(executor: str, configs: Sequence[RunConfig], workers: int | None) -> str:
    """``auto``: vectorized on CUDA when every optimizer has a batched twin; otherwise (and
    on a CPU) serial when there is one core or one run or the script cannot start worker
    processes (no ``__main__`` guard), else ``"auto"``: runs start here and a pool starts
    only when their measured times say it pays (:func:`lrkit.sweeps.pool.parallel_pays`)."""
    if executor != "auto":
        return executor
    import torch

    batched = all(c.optimizer in DEFAULTS for c in configs)  # prodigy & co. have no twin
    if torch.cuda.is_available() and batched:
        return "vectorized"
    cores = workers or os.cpu_count() or 1
    if cores < 2 or len(configs) < 2 or _guard_problem() is not None:
        return "serial"
    return "auto"


def _guard_problem() -> str | None:
    """:func:`main_guard_problem` where workers would start without fork, else None."""
    return None if start_method() == "fork" else main_guard_problem()


def main_guard_problem() -> str | None:
    """What is wrong when this call would start spawned workers from a script's top level
    without an ``if __name__ == "__main__":`` guard (each worker imports the script again,
    and would run it again), or None. Forked workers (Linux) do not import the script: the
    executors ask only when the workers are not forked (:func:`~lrkit.sweeps.pool.start_method`).
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or not str(path).endswith(".py"):
        return None  # python -c, a REPL, a notebook: workers do not re-run anything
    frame = sys._getframe(1)
    while frame is not None and not (
        frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"
    ):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and _is_main_guard(node.test)
            and node.lineno <= line <= (node.end_lineno or node.lineno)
        ):
            return None
    return (
        f"{path}, line {line}, starts a sweep with worker processes outside an "
        '`if __name__ == "__main__":` guard; every worker imports the script again and '
        "would run it again. Put the sweep call under that guard, or use executor='serial'"
    )


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    texts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and texts == ["__main__"]


def check_executor(executor: str, workers: int | None, address: str | None) -> None:
    """Every executor setting checked before anything is claimed: the name, ``workers``,
    the start method and the script's ``__main__`` guard (processes; spawned workers only)
    and a reachable Ray ``address``."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)} (got {executor!r})")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"workers must be an integer >= 1 (got {workers!r}); or leave it unset")
    if executor in ("processes", "auto"):
        start_method()  # a bad $LRKIT_START_METHOD is named before any claim
    if executor == "processes" and (problem := _guard_problem()) is not None:
        raise ValueError(problem)
    if executor == "ray" and address is not None:
        check_ray_address(address)


RAY_CONNECT_S = 5.0


def check_ray_address(address: str) -> None:
    """Fail fast on a Ray address nobody answers at (Ray itself waits many minutes)."""
    if address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"a Ray address is host:port or ray://host:port (got {address!r}); see `ray status`"
        )
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_S).close()
    except OSError as exc:
        raise ValueError(
            f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); start one with "
            "`ray start --head` there, or fix --address"
        ) from None


def execute(
    executor: str,
    configs: Sequence[RunConfig],
    tasks: TaskResolver,
    workers: int | None,
    address: str | None,
) -> Outcomes:
    """The outcomes of ``configs`` run by ``executor``, with the tasks of ``tasks`` (built;
    see the module's text for how each executor gets them)."""
    if not configs:
        return serial((), tasks)
    executor = choose(executor, configs, workers)
    if executor == "vectorized":
        return vectorized(configs, tasks)
    if executor == "serial":
        return serial(configs, tasks)
    if executor in ("processes", "auto"):
        return processes(configs, tasks, workers, auto=executor == "auto")
    if executor == "ray":
        return ray(configs, tasks, workers, address)
    raise ValueError(f"executor must be one of {', '.join(EXECUTORS)} (got {executor!r})")
