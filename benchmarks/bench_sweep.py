"""Sweep executors: wall time of the same grid on serial, processes, Ray and auto, vs serial.

Grids (6 LRs × 2 seeds = 12 runs, each run single-threaded):

- ``long``: mnist-lenet, 10 epochs (runs of about 5 s),
- ``1s``: mnist-lenet, 2 epochs (runs of about 1 s),
- ``tiny``: digits-mlp, 2 epochs (runs of about 0.07 s: overhead-bound).

Every executor writes its own fresh store; the ratio is serial's wall time over the
executor's in the same run (>1: faster than serial), start-up of worker processes / the local
Ray cluster included. ``uptime`` is printed first: the machine may be shared.

    .venv/bin/python benchmarks/bench_sweep.py [--workers 2] [--grids long,1s,tiny]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import lrkit

GRIDS = {
    "long": ("mnist-lenet", 10),
    "1s": ("mnist-lenet", 2),
    "tiny": ("digits-mlp", 2),
}
EXECUTORS = ("serial", "processes", "ray", "auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--grids", default=",".join(GRIDS))
    parser.add_argument("--executors", default=",".join(EXECUTORS))
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs")
    print(f"12 runs per grid, {args.workers} workers")
    print(f"{'grid':<6}{'task':<13}{'executor':<11}{'wall s':>8}{'s/run':>8}{'speed-up':>10}")
    for grid in args.grids.split(","):
        task, epochs = GRIDS[grid]
        times: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for executor in args.executors.split(","):
                started = time.perf_counter()
                res = lrkit.sweep(task, lrs=lrkit.logspace(1e-3, 0.3, 6), seeds=(0, 1),
                                  epochs=epochs, executor=executor, workers=args.workers,
                                  store=Path(tmp) / executor, progress=False,
                                  report=False)  # fmt: skip
                times[executor] = time.perf_counter() - started
                assert res.ran == 12 and not res.failures
                per_run = sum(r.wall_s or 0.0 for r in res.runs) / 12
                speedup = times["serial"] / times[executor] if "serial" in times else float("nan")
                print(f"{grid:<6}{task:<13}{executor:<11}{times[executor]:>8.1f}{per_run:>8.2f}"
                      f"{speedup:>10.2f}", flush=True)  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
