"""Executors: where the runs of a sweep run. Each yields ``(run id, result or exception)``.

The driver (``lrkit.sweep``) writes the store; executors only run and return. Every executor
gets its tasks from the :class:`~lrkit.sweeps.run.TaskResolver` of the sweep call (serial,
vectorized) or from one made by each worker process / Ray actor for the life of the pool.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from lrkit.sweeps.run import TaskResolver, run_config
from lrkit.sweeps.spec import RunConfig

EXECUTORS: dict[str, str] = {
    "serial": "one run after another in this process",
    "processes": "a pool of --workers local processes",
    "ray": "--workers Ray actors on a local cluster or the one at --address",
    "vectorized": "runs that differ only in LR and seed trained together (fit_many)",
    "auto": "vectorized on CUDA, else processes when runs and cores are many, else serial",
}
"""Executor names and what each does (the CLI's help is written from this table)."""
Outcome = tuple[str, dict[str, Any] | BaseException]


def serial(configs: Sequence[RunConfig], tasks: TaskResolver) -> Iterator[Outcome]:
    """In this process, one run after another."""
    for cfg in configs:
        try:
            yield cfg.id, run_config(cfg, tasks)
        except Exception as exc:  # a failed run is recorded, the sweep goes on
            yield cfg.id, exc


_pool_worker_tasks: TaskResolver | None = None
"""The tasks of a ``processes`` pool worker: set by :func:`_start_pool_worker`, which runs only
in a worker process the pool spawned for one sweep call, so it lives and dies with that pool
(never set in the process that calls ``sweep``)."""


def _start_pool_worker() -> None:
    global _pool_worker_tasks
    _pool_worker_tasks = TaskResolver()


def _run_in_pool_worker(config: RunConfig) -> dict[str, Any]:
    if _pool_worker_tasks is None:
        raise RuntimeError("_run_in_pool_worker runs only in a pool started by processes()")
    return run_config(config, _pool_worker_tasks)


def processes(configs: Sequence[RunConfig], workers: int | None) -> Iterator[Outcome]:
    """A local pool of ``workers`` processes (default: one per CPU), started with spawn."""
    workers = workers or os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_pool_worker
    ) as pool:
        futures = {pool.submit(_run_in_pool_worker, cfg): cfg.id for cfg in configs}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as exc:
                yield futures[future], exc


class _RunActor:
    """A Ray actor that runs configs, keeping the tasks it built for its own later runs."""

    def __init__(self) -> None:
        self.tasks = TaskResolver()

    def run(self, config: RunConfig) -> dict[str, Any]:
        return run_config(config, self.tasks)


def ray(
    configs: Sequence[RunConfig], workers: int | None, address: str | None
) -> Iterator[Outcome]:
    """Runs on ``workers`` Ray actors (default: the cluster's CPUs), one run at a time each;
    ``address`` joins a running cluster, else a local one starts."""
    try:
        import ray as ray_module
    except ImportError as exc:
        raise ImportError("executor='ray' needs Ray: pip install 'lrkit[ray]'") from exc
    started_here = not ray_module.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is not None:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = workers or os.cpu_count() or 1
        ray_module.init(**kwargs)
    actors: list[Any] = []
    try:
        cpus = ray_module.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        size = workers or max(int(cpus), 1)
        actor_class = ray_module.remote(num_cpus=1)(_RunActor)
        actors = [actor_class.remote() for _ in range(min(size, len(configs)))]
        queue = list(reversed(configs))
        pending: dict[Any, tuple[str, Any]] = {}

        def submit(actor: Any) -> None:
            if queue:
                cfg = queue.pop()
                pending[actor.run.remote(cfg)] = (cfg.id, actor)

        for actor in actors:
            submit(actor)
        while pending:
            done, _ = ray_module.wait(list(pending), num_returns=1)
            ref = done[0]
            run_id, actor = pending.pop(ref)
            submit(actor)  # keep the actor busy while this result is stored
            try:
                yield run_id, ray_module.get(ref)
            except Exception as exc:
                cause = getattr(exc, "cause", None)
                yield run_id, cause if isinstance(cause, BaseException) else exc
    finally:
        for actor in actors:
            ray_module.kill(actor)
        if started_here:
            ray_module.shutdown()


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
) -> Iterator[Outcome]:
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
    """``auto``: vectorized on CUDA; on a CPU, processes when there are cores and runs enough
    to pay for starting workers (about 2 s each, measured in benchmarks/bench_sweep.py),
    else serial."""
    if executor != "auto":
        return executor
    import torch

    if torch.cuda.is_available():
        return "vectorized"
    cores = workers or os.cpu_count() or 1
    return "processes" if cores >= 4 and len(configs) >= 2 * cores else "serial"


def execute(
    executor: str,
    configs: Sequence[RunConfig],
    tasks: TaskResolver,
    workers: int | None,
    address: str | None,
) -> Iterator[Outcome]:
    """The outcomes of ``configs`` run by ``executor``; in-process executors take their
    tasks from ``tasks``, worker processes and Ray actors build their own."""
    executor = choose(executor, configs, workers)
    if executor == "vectorized":
        return vectorized(configs, tasks)
    if executor == "serial":
        return serial(configs, tasks)
    if executor == "processes":
        return processes(configs, workers)
    if executor == "ray":
        return ray(configs, workers, address)
    raise ValueError(f"executor must be one of {', '.join(EXECUTORS)} (got {executor!r})")
