"""The oracle: every task trained at each LR of its grid, per protocol and seed, stored.

    nice -n 19 .venv/bin/python -m benchmarks.suggest.oracle [--tasks a,b] [--workers 2]

9 half-decade LRs × seeds 0-3 × {constant, one_cycle (LR = max LR), warmup_cosine (LR =
peak)} per task, run with ``lrkit.sweep`` (executor ``processes``) into
``benchmarks/results/suggest/<task>/``: cached and resumable, a rerun trains only what is
missing. ``--lrs`` trains extra LRs (e.g. the exact LRs the rules picked) into the same store.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from benchmarks.suggest.paths import PROTOCOLS, RESULTS, SEEDS
from benchmarks.suggest.tasks import GRIDS, SUITE, TASKS

import lrkit
from lrkit.sweeps import Store


def task_path(name: str) -> str:
    """The importable ``module:function`` of a suite task (what worker processes build)."""
    return f"benchmarks.suggest.tasks:{TASKS[name].__name__}"


def grid_of(optimizer: str) -> list[float]:
    return GRIDS["sgd" if optimizer == "sgd" else "adam"]


def train(
    name: str, lrs: Sequence[float], seeds: Sequence[int] = SEEDS, workers: int = 2,
    schedules: Sequence[str] = PROTOCOLS, optimizers: Sequence[str] | None = None,
) -> None:  # fmt: skip
    """Train ``name`` at every LR × schedule × seed that its store does not hold yet (from
    any earlier sweep: a grown grid trains only its new LRs)."""
    task = TASKS[name]()
    optimizers = tuple(optimizers or (task.optimizer,))
    held = done(name)
    wanted = [
        (s, lr, o, seed) for lr in lrs for s in schedules for o in optimizers for seed in seeds
    ]
    missing = sorted({lr for s, lr, o, seed in wanted if (s, lr, o, seed) not in held})
    if not missing:
        return
    lrkit.sweep(task_path(name), lrs=missing, schedules=tuple(schedules),
                optimizers=optimizers, seeds=tuple(seeds),
                epochs=task.epochs, store=RESULTS / "suggest" / name, name=name,
                executor="processes" if workers > 1 else "serial",
                workers=workers if workers > 1 else None, progress=False,
                report=False)  # fmt: skip


def done(name: str) -> set[tuple[str, float, str, int]]:
    """(schedule, lr, optimizer, seed) of every finished run in the task's store."""
    path = RESULTS / "suggest" / name
    if not (path / "lrkit.db").exists():
        return set()
    out = set()
    for r in Store(path).runs():
        if r.status == "done":
            c = r.config
            out.add((c["schedule"], c["lr"], c["optimizer"], c["seed"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(SUITE), help="comma-separated task names")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--seeds",
        default=",".join(map(str, SEEDS)),
        help="comma-separated seeds (to split a task between processes)",
    )
    args = parser.parse_args()
    for name in args.tasks.split(","):
        start = time.time()
        seeds = tuple(int(s) for s in args.seeds.split(","))
        train(name, grid_of(TASKS[name]().optimizer), seeds=seeds, workers=args.workers)
        print(f"{name}: oracle grid done in {time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
