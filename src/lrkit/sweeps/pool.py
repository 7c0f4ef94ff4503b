"""Parallel executors that keep their workers: local processes or Ray actors.

Workers start once per sweep call, keep the tasks (and their data) they built for later runs,
and take runs in batches sized from the run times seen so far (a batch lasts about
:data:`BATCH_S`), so tiny runs do not pay a round trip each. While the workers start, the
calling process runs runs itself ("local help"), so start-up is not lost time; with
``executor="auto"`` the workers start only when the runs measured so far say they will pay
(:func:`parallel_pays`). If every worker is lost, the remaining runs run in this process.

A worker whose batch is lost with it (a Ray node that died) has the batch put back in the
queue: the driver stores a run only when its result arrives, so every run is stored once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from lrkit.sweeps.run import TaskResolver, run_config
from lrkit.sweeps.spec import RunConfig

__all__ = ["BATCH_S", "STARTUP_S", "ProcessBackend", "RayBackend", "parallel_pays", "pooled"]

Outcome = tuple[str, dict[str, Any] | BaseException]
BATCH_S = 0.5
"""A batch of runs handed to a worker lasts about this long (tiny runs are grouped)."""
STARTUP_S = 3.0
"""What starting a pool costs, in seconds of one core (spawn, import torch, build the task;
measured with benchmarks/bench_sweep.py on a 2-core machine): ``auto`` weighs it."""
WATCHDOG_S = 0.5
"""How often a pool worker checks that the process that started it is still there."""


def parallel_pays(run_s: float, remaining: int, cores: int) -> bool:
    """Whether ``remaining`` runs of ``run_s`` seconds finish sooner on ``cores`` workers
    (after :data:`STARTUP_S`) than here, by a margin (``auto``'s rule)."""
    if cores < 2 or remaining < 2:
        return False
    serial_s = remaining * run_s
    return STARTUP_S + serial_s / cores < 0.8 * serial_s


def one(config: RunConfig, tasks: TaskResolver) -> Outcome:
    """One run's outcome: its result, or the exception it raised (recorded as failed)."""
    try:
        return config.id, run_config(config, tasks)
    except Exception as exc:
        return config.id, exc


class Backend(Protocol):
    """Where batches run: ``slots`` workers, each taking one batch at a time."""

    local_help: bool

    def start(self, first: RunConfig, size: int) -> list[Future[Any]]: ...
    def submit(self, slot: int, batch: list[RunConfig]) -> Future[list[Outcome]]: ...
    def lost(self, exc: BaseException) -> bool: ...
    def close(self) -> None: ...


def pooled(
    configs: Sequence[RunConfig],
    tasks: TaskResolver,
    backend: Backend,
    workers: int,
    *,
    auto: bool = False,
) -> Iterator[Outcome]:
    """The outcomes of ``configs``, run on ``backend``'s workers and (while they start, or
    when all are lost) in this process. ``auto``: start the workers only if they pay."""
    todo: deque[RunConfig] = deque(configs)
    lock = threading.Lock()
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    run_times: list[float] = []
    stop_local = threading.Event()
    local_thread: threading.Thread | None = None

    def take(k: int) -> list[RunConfig]:
        with lock:
            return [todo.popleft() for _ in range(min(k, len(todo)))]

    def local_loop() -> None:
        while not stop_local.is_set():
            batch = take(1)
            if not batch:
                return
            started = time.perf_counter()
            outcome = one(batch[0], tasks)
            events.put(("local", (outcome, time.perf_counter() - started)))

    def start_local() -> None:
        nonlocal local_thread
        stop_local.clear()
        local_thread = threading.Thread(target=local_loop, name="lrkit-local-runs", daemon=True)
        local_thread.start()

    def batch_size(live: int) -> int:
        if not run_times:
            return 1
        mean = sum(run_times) / len(run_times)
        return max(1, min(math.ceil(BATCH_S / max(mean, 1e-6)), math.ceil(len(todo) / live)))

    live: set[int] = set()

    def feed(slot: int) -> None:
        batch = take(batch_size(max(len(live), 1)))
        if not batch:
            return
        try:
            future = backend.submit(slot, batch)
        except Exception:  # the pool broke: the batch goes back, the slot is gone
            with lock:
                todo.extendleft(reversed(batch))
            live.discard(slot)
            return
        future.add_done_callback(lambda f: events.put(("batch", (slot, f, batch))))

    started = False

    def start_workers() -> None:
        nonlocal started
        started = True
        for slot, ready in enumerate(backend.start(configs[0], workers)):
            ready.add_done_callback(functools.partial(on_ready, slot))

    def on_ready(slot: int, future: Future[Any]) -> None:
        events.put(("ready", (slot, future)))

    if backend.local_help or auto:
        start_local()
    try:
        if not auto:
            start_workers()
        yielded = 0
        while yielded < len(configs):
            kind, payload = events.get()
            if kind == "local":
                outcome, seconds = payload
                run_times.append(seconds)
                yielded += 1
                yield outcome
                if auto and not started and parallel_pays(seconds, len(todo), workers):
                    start_workers()
            elif kind == "ready":
                slot, future = payload
                if future.exception() is None:
                    live.add(slot)
                    stop_local.set()
                    feed(slot)
            else:
                slot, future, batch = payload
                exc = future.exception()
                if exc is not None and backend.lost(exc):
                    live.discard(slot)
                    with lock:
                        todo.extendleft(reversed(batch))
                    outcomes: list[Outcome] = []
                else:
                    outcomes = [(c.id, exc) for c in batch] if exc else future.result()
                for outcome in outcomes:
                    if not isinstance(outcome[1], BaseException):
                        run_times.append(float(outcome[1]["history"].get("wall_s", 0.0)))
                    yielded += 1
                    yield outcome
                if slot in live:
                    feed(slot)
            if started and not live and todo and events.empty() and not _alive(local_thread):
                start_local()  # every worker lost (or none started): finish here
    finally:
        stop_local.set()
        if local_thread is not None:
            local_thread.join()
        if started:
            backend.close()


def _alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


# ---------------------------------------------------------------------- local processes

_pool_worker_tasks: TaskResolver | None = None
"""The tasks of a ``processes`` pool worker: set by :func:`_start_pool_worker`, which runs only
in a worker process the pool spawned for one sweep call, so it lives and dies with that pool
(never set in the process that calls ``sweep``)."""


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCHDOG_S)
        if os.getppid() != parent:
            os._exit(1)  # the sweep's process is gone (SIGKILL): do not run on as an orphan


def _start_pool_worker(parent: int) -> None:
    global _pool_worker_tasks
    _pool_worker_tasks = TaskResolver()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _warm(config: RunConfig) -> int:
    """Build the first run's task in this worker (data loaded before the first batch)."""
    if _pool_worker_tasks is None:
        raise RuntimeError("_warm runs only in a pool started by ProcessBackend")
    _pool_worker_tasks(config)
    return os.getpid()


def _run_batch(batch: list[RunConfig]) -> list[Outcome]:
    if _pool_worker_tasks is None:
        raise RuntimeError("_run_batch runs only in a pool started by ProcessBackend")
    return [one(config, _pool_worker_tasks) for config in batch]


class ProcessBackend:
    """``workers`` local processes, started with spawn; each exits if the sweep's process
    dies (a watchdog thread), so a SIGKILLed sweep leaves no workers behind."""

    local_help = True

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.warmed = False

    def start(self, first: RunConfig, size: int) -> list[Future[Any]]:
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=size, mp_context=context,
                                        initializer=_start_pool_worker,
                                        initargs=(os.getpid(),))  # fmt: skip
        futures = [self.pool.submit(_warm, first) for _ in range(size)]
        for future in futures:
            future.add_done_callback(lambda f: setattr(self, "warmed", True))
        return futures

    def submit(self, slot: int, batch: list[RunConfig]) -> Future[list[Outcome]]:
        assert self.pool is not None
        return self.pool.submit(_run_batch, batch)

    def lost(self, exc: BaseException) -> bool:
        return False  # a broken pool fails the batch: a run that kills its worker is a failure

    def close(self) -> None:
        if self.pool is None:
            return
        if not self.warmed:  # every run finished here before a worker was up: stop them now
            processes = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            return
        self.pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------- Ray actors


class _RunActor:
    """A Ray actor that runs batches, keeping the tasks it built for its own later runs."""

    def __init__(self) -> None:
        self.tasks = TaskResolver()

    def warm(self, config: RunConfig) -> int:
        self.tasks(config)
        return os.getpid()

    def run_batch(self, batch: list[RunConfig]) -> list[Outcome]:
        return [one(config, self.tasks) for config in batch]


class RayBackend:
    """Ray actors (one CPU each) on the cluster at ``address``, or on a local one started
    here (then this process helps while it starts). A batch whose actor died (its node was
    lost) is put back and runs elsewhere."""

    def __init__(self, address: str | None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ImportError("executor='ray' needs Ray: pip install 'lrkit[ray]'") from exc
        self.ray = ray
        self.address = address
        self.local_help = address is None and not ray.is_initialized()
        self.started_here = False
        self.actors: list[Any] = []

    def start(self, first: RunConfig, size: int) -> list[Future[Any]]:
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is not None:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = size or os.cpu_count() or 1
            ray.init(**kwargs)
            self.started_here = True
        size = size or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        actor_class = ray.remote(num_cpus=1)(_RunActor)
        self.actors = [actor_class.remote() for _ in range(size)]
        return [actor.warm.remote(first).future() for actor in self.actors]

    def submit(self, slot: int, batch: list[RunConfig]) -> Future[list[Outcome]]:
        future: Future[list[Outcome]] = self.actors[slot].run_batch.remote(batch).future()
        return future

    def lost(self, exc: BaseException) -> bool:
        from ray.exceptions import RayActorError

        return isinstance(exc, RayActorError)

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone with its node
                self.ray.kill(actor)
        if self.started_here:
            self.ray.shutdown()
