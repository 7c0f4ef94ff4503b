"""Parallel executors that keep their workers: local processes or Ray actors.

Workers start once per sweep call, keep the tasks (and their data) they built for later runs,
and take runs in batches sized from the run times seen so far (a batch lasts about
:data:`BATCH_S`), so tiny runs do not pay a round trip each. On Linux, local workers are
forked from the sweep's process after it has built the tasks (:func:`start_method`), so they
start with torch imported and the data loaded; spawned workers (macOS, Windows, or
``LRKIT_START_METHOD=spawn``) import and build everything themselves, and while they start the
calling process runs runs itself ("local help"), so start-up is not lost time. With
``executor="auto"`` the workers get runs only when the runs measured so far say they pay
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
import sys
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from lrkit.sweeps.run import TaskResolver, run_config
from lrkit.sweeps.spec import RunConfig

__all__ = [
    "BATCH_S",
    "STARTUP_S",
    "Owning",
    "ProcessBackend",
    "RayBackend",
    "parallel_pays",
    "pooled",
    "start_method",
]

Outcome = tuple[str, dict[str, Any] | BaseException]
Outcomes = Generator[Outcome, None, None]
BATCH_S = 0.5
"""A batch of runs handed to a worker lasts about this long (tiny runs are grouped)."""
STARTUP_S = {"fork": 0.2, "spawn": 3.0, "forkserver": 3.0}
"""What starting a pool of 2 workers costs, in seconds of one core, by start method:
``auto`` weighs it. spawn (and forkserver): import torch and build the task in each worker
(about 4.7 s a worker on a quiet 2-core machine, partly hidden by local help); fork: copy
this process, which has both, and later shut the copies down (0.1-0.2 s for mnist-lenet on
a 2-core machine at load 8). Measured with benchmarks/bench_sweep.py and
``ProcessBackend.fork_now``."""
START_METHOD_ENV = "LRKIT_START_METHOD"
"""Environment variable that picks how local workers start: fork, spawn or forkserver."""
WATCHDOG_S = 0.5
"""How often a pool worker checks that the process that started it is still there."""
STOP_S = 5.0
"""Seconds a pool worker gets to stop when the sweep closes before it is killed."""


def start_method() -> str:
    """How local pool workers start: ``$LRKIT_START_METHOD`` if set, else ``"fork"`` on
    Linux (workers inherit the built tasks: no import, no data load) and ``"spawn"``
    elsewhere (fork is unsafe on macOS and absent on Windows) or once this process has
    initialised CUDA (a forked child cannot use it)."""
    import torch

    method = os.environ.get(START_METHOD_ENV, "").strip()
    available = multiprocessing.get_all_start_methods()
    if not method:
        linux = sys.platform.startswith("linux") and "fork" in available
        cuda = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
        return "fork" if linux and not cuda else "spawn"
    if method not in available:
        raise ValueError(
            f"{START_METHOD_ENV} must be one of {', '.join(available)} on this platform "
            f"(got {method!r}); unset it for the default"
        )
    return method


def parallel_pays(run_s: float, remaining: int, cores: int, startup_s: float) -> bool:
    """Whether ``remaining`` runs of ``run_s`` seconds finish sooner on ``cores`` workers
    (after ``startup_s`` of start-up, see :data:`STARTUP_S`) than here, by a margin
    (``auto``'s rule)."""
    if cores < 2 or remaining < 2:
        return False
    serial_s = remaining * run_s
    return startup_s + serial_s / cores < 0.8 * serial_s


def one(config: RunConfig, tasks: TaskResolver) -> Outcome:
    """One run's outcome: its result, or the exception it raised (recorded as failed)."""
    try:
        return config.id, run_config(config, tasks)
    except Exception as exc:
        return config.id, exc


class Backend(Protocol):
    """Where batches run: ``slots`` workers, each taking one batch at a time. ``local_help``:
    this process runs runs while the workers start; ``startup_s``: what starting costs."""

    local_help: bool
    startup_s: float

    def start(self, first: RunConfig, size: int) -> list[Future[Any]]: ...
    def submit(self, slot: int, batch: list[RunConfig]) -> Future[list[Outcome]]: ...
    def lost(self, exc: BaseException) -> bool: ...
    def close(self) -> None: ...


class Owning(Generator[Outcome, None, None]):
    """Outcomes that own their backend: it is closed when they end, fail or are closed —
    also when they are closed before the first one was asked for (a generator's ``finally``
    runs only once it has started, and forked workers exist from the moment the executor
    is made)."""

    def __init__(self, outcomes: Outcomes, backend: Backend) -> None:
        self._outcomes, self._backend = outcomes, backend

    def send(self, value: None) -> Outcome:
        try:
            return self._outcomes.send(value)
        except BaseException:  # the end (StopIteration) or a failure: the workers go
            self._backend.close()
            raise

    def throw(self, *args: Any) -> Outcome:
        return self._outcomes.throw(*args)

    def close(self) -> None:
        try:
            self._outcomes.close()
        finally:
            self._backend.close()


def pooled(
    configs: Sequence[RunConfig],
    tasks: TaskResolver,
    backend: Backend,
    workers: int,
    *,
    auto: bool = False,
) -> Owning:
    """The outcomes of ``configs``, run on ``backend``'s workers and (while they start, or
    when all are lost) in this process; they own ``backend`` (:class:`Owning`). ``auto``: use
    the workers only if they pay (runs timed here first; or, when the backend starts at no
    cost, the workers' first runs)."""
    return Owning(_outcomes(configs, tasks, backend, workers, auto), backend)


def _outcomes(
    configs: Sequence[RunConfig], tasks: TaskResolver, backend: Backend, workers: int, auto: bool
) -> Outcomes:
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

    # auto on workers that start at no cost (forked): they run the first runs and time them
    probing = auto and not backend.local_help
    if backend.local_help or (auto and not probing):
        start_local()
    try:
        if not auto or probing:
            start_workers()
        yielded = 0
        while yielded < len(configs):
            kind, payload = events.get()
            if kind == "local":
                outcome, seconds = payload
                run_times.append(seconds)
                yielded += 1
                yield outcome
                if (
                    auto
                    and not started
                    and parallel_pays(seconds, len(todo), workers, backend.startup_s)
                ):
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
                if probing and run_times:
                    probing = False
                    if not parallel_pays(run_times[-1], len(todo), workers, backend.startup_s):
                        live.clear()  # too short to pay even so: the rest run here
                if slot in live:
                    feed(slot)
            if started and not live and todo and events.empty() and not _alive(local_thread):
                start_local()  # every worker lost (or none started): finish here
    finally:
        stop_local.set()
        if local_thread is not None:
            local_thread.join()


def _alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


# ---------------------------------------------------------------------- local processes

_pool_worker_tasks: TaskResolver | None = None
"""The tasks of a ``processes`` pool worker: set by :func:`_start_pool_worker`, which runs only
in a worker process the pool started for one sweep call, so it lives and dies with that pool
(never set in the process that calls ``sweep``)."""


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCHDOG_S)
        if os.getppid() != parent:
            os._exit(1)  # the sweep's process is gone (SIGKILL): do not run on as an orphan


def _start_pool_worker(parent: int, tasks: TaskResolver | None) -> None:
    """A worker's set-up: the tasks it inherited (fork) or a resolver of its own (spawn),
    one intra-op thread (runs are single-threaded; and after a fork, torch's thread pool
    of the parent is not there), and the watchdog."""
    global _pool_worker_tasks
    import torch

    torch.set_num_threads(1)
    _pool_worker_tasks = tasks if tasks is not None else TaskResolver()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _warm(config: RunConfig) -> int:
    """Build the first run's task in this worker (data loaded before the first batch; a
    forked worker has it already)."""
    if _pool_worker_tasks is None:
        raise RuntimeError("_warm runs only in a pool started by ProcessBackend")
    _pool_worker_tasks(config)
    return os.getpid()


def _run_batch(batch: list[RunConfig]) -> list[Outcome]:
    if _pool_worker_tasks is None:
        raise RuntimeError("_run_batch runs only in a pool started by ProcessBackend")
    return [one(config, _pool_worker_tasks) for config in batch]


class ProcessBackend:
    """``size`` local processes started with ``method`` (:func:`start_method`); each exits if
    the sweep's process dies (a watchdog thread), so a SIGKILLed sweep leaves no workers
    behind.

    With ``fork`` the workers start here, at once (:meth:`fork_now`, called by the executor
    before the sweep's process starts any thread of its own: forking a process while another
    of its threads holds a lock can leave the child stuck), and inherit ``tasks`` as built;
    no local help is needed. With ``spawn``/``forkserver`` they start when the pool is first
    used, build their own tasks, and this process runs runs meanwhile.
    """

    def __init__(self, tasks: TaskResolver, method: str) -> None:
        self.tasks = tasks
        self.method = method
        self.local_help = method != "fork"
        self.startup_s = STARTUP_S[method]
        self.pool: ProcessPoolExecutor | None = None
        self.ready: list[Future[Any]] = []
        self.warmed = False

    def fork_now(self, first: RunConfig, size: int) -> None:
        """Start the workers now (fork: all of them are forked before this returns)."""
        context = multiprocessing.get_context(self.method)
        inherited = self.tasks if self.method == "fork" else None
        self.pool = ProcessPoolExecutor(max_workers=size, mp_context=context,
                                        initializer=_start_pool_worker,
                                        initargs=(os.getpid(), inherited))  # fmt: skip
        self.ready = [self.pool.submit(_warm, first) for _ in range(size)]
        for future in self.ready:
            future.add_done_callback(lambda f: setattr(self, "warmed", True))

    def start(self, first: RunConfig, size: int) -> list[Future[Any]]:
        if self.pool is None:
            self.fork_now(first, size)
        return self.ready

    def submit(self, slot: int, batch: list[RunConfig]) -> Future[list[Outcome]]:
        assert self.pool is not None
        return self.pool.submit(_run_batch, batch)

    def lost(self, exc: BaseException) -> bool:
        return False  # a broken pool fails the batch: a run that kills its worker is a failure

    def close(self) -> None:
        """Stop the workers (idempotent: the outcomes and their owner may both call it). A
        worker still there STOP_S after it was asked to go is killed: a forked worker
        inherits its parent's signal handlers, and one that ignores SIGTERM would outlive
        the sweep."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        if self.warmed:
            pool.shutdown(wait=True, cancel_futures=True)
        else:  # every run finished here before a worker was up: stop them now
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
        for process in processes:
            process.join(timeout=STOP_S)
            if process.is_alive():
                process.kill()
                process.join(timeout=STOP_S)


# ---------------------------------------------------------------------- Ray actors


class _RunActor:
    """A Ray actor that runs batches, keeping its tasks for its own later runs: the driver's,
    as built there (shipped once through Ray's object store), or built here if they could
    not be shipped."""

    def __init__(self, tasks: TaskResolver | None) -> None:
        self.tasks = tasks if tasks is not None else TaskResolver()

    def warm(self, config: RunConfig) -> int:
        self.tasks(config)
        return os.getpid()

    def run_batch(self, batch: list[RunConfig]) -> list[Outcome]:
        return [one(config, self.tasks) for config in batch]


class RayBackend:
    """Ray actors (one CPU each) on the cluster at ``address``, or on a local one started
    here (then this process helps while it starts). A batch whose actor died (its node was
    lost) is put back and runs elsewhere."""

    def __init__(self, address: str | None, tasks: TaskResolver | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ImportError("executor='ray' needs Ray: pip install 'lrkit[ray]'") from exc
        self.ray = ray
        self.tasks = tasks
        self.address = address
        self.local_help = address is None and not ray.is_initialized()
        self.startup_s = STARTUP_S["spawn"]
        self.started_here = False
        self.actors: list[Any] = []

    def start(self, first: RunConfig, size: int) -> list[Future[Any]]:
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is not None:
                kwargs["address"] = self.address
            else:  # a new local cluster, also when `ray start` left one running here
                kwargs["address"] = "local"
                kwargs["num_cpus"] = size or os.cpu_count() or 1
            ray.init(**kwargs)
            self.started_here = True
        size = size or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        actor_class = ray.remote(num_cpus=1)(_RunActor)
        shared = None
        if self.tasks is not None:
            try:  # built tasks (data loaded) travel once; actors then need not build them
                shared = ray.put(self.tasks)
            except Exception:  # a task that does not pickle: each actor builds its own
                shared = None
        self.actors = [actor_class.remote(shared) for _ in range(size)]
        return [actor.warm.remote(first).future() for actor in self.actors]

    def submit(self, slot: int, batch: list[RunConfig]) -> Future[list[Outcome]]:
        future: Future[list[Outcome]] = self.actors[slot].run_batch.remote(batch).future()
        return future

    def lost(self, exc: BaseException) -> bool:
        from ray.exceptions import RayActorError

        return isinstance(exc, RayActorError)

    def close(self) -> None:
        """Kill the actors and a cluster started here (idempotent)."""
        actors, self.actors = self.actors, []
        for actor in actors:
            with contextlib.suppress(Exception):  # already gone with its node
                self.ray.kill(actor)
        if self.started_here:
            self.started_here = False
            self.ray.shutdown()
