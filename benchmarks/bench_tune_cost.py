"""What ``lrkit.tune`` costs when the budget is not a few epochs of a tiny set.

    nice -n 19 .venv/bin/python -m benchmarks.bench_tune_cost [--min-steps 600]

The suite's budgets are 40-200 optimizer steps a run, so a 100-step range test is 0.5-2.5
runs of them and dominates tune's cost there (``benchmarks/bench_tune.py``). Here each suite
task is trained for at least ``--min-steps`` steps (its epochs scaled up), tune runs at its
defaults (K=5, pruning, ``finder_runs=None``: three range-test runs when they cost at most
half a run) for a constant LR, seed 0, and the cost is split into range test and candidates.
No oracle exists at these budgets, so regret is not measured here, only cost. Writes
``benchmarks/results/tune_cost.md``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import torch
from benchmarks.suggest.paths import RESULTS
from benchmarks.suggest.tasks import SUITE, TASKS

import lrkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-steps", type=int, default=600)
    parser.add_argument("--tasks", default="all")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    names = SUITE if args.tasks == "all" else args.tasks.split(",")
    lines = [f"tune K=5 (defaults), constant LR, seed 0, every task trained for at least "
             f"{args.min_steps} steps a run; cost in full-budget run-equivalents.", "",
             "| task | epochs | steps a run | range-test runs | range test | candidates | "
             "total | wall s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    totals, finders, candidates = [], [], []
    for name in names:
        task = TASKS[name]()
        length = len(task.train_loader(0))
        epochs = max(task.epochs, math.ceil(args.min_steps / length))
        started = time.perf_counter()
        res = lrkit.tune(task, schedule="constant", epochs=epochs, seeds=(0,), progress=False)
        wall = time.perf_counter() - started
        trained = sum(c.stopped_at for c in res.candidates) / epochs
        finder = res.cost - trained
        totals.append(res.cost)
        finders.append(finder)
        candidates.append(trained)
        lines.append(f"| {name} | {epochs} | {epochs * length} | {res.finder.runs} | "
                     f"{finder:.2f} | {trained:.2f} | {res.cost:.2f} | {wall:.0f} |")  # fmt: skip
        print(lines[-1], flush=True)
    means = [statistics.fmean(v) for v in (finders, candidates, totals)]
    lines.append("| **mean** | | | | " + " | ".join(f"{m:.2f}" for m in means) + " | |")
    text = "\n".join(lines)
    print(text)
    (RESULTS / "tune_cost.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
