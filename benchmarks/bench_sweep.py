"""Sweep executors: wall time of the same grid on serial, processes and Ray, vs serial.

Grid: mnist-lenet, 6 LRs × 2 seeds, 2 epochs (12 runs of about 2 s, each single-threaded),
and digits-mlp, the same grid (12 runs of about 0.1 s: overhead-bound). Every executor writes
its own fresh store; the ratio is its wall time over serial's in the same run, start-up of
worker processes / the local Ray cluster included.

    .venv/bin/python benchmarks/bench_sweep.py [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lrkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    grid = {"lrs": lrkit.logspace(1e-3, 0.3, 6), "seeds": (0, 1), "epochs": 2,
            "progress": False, "report": False}  # fmt: skip
    print(f"12 runs per task, {args.workers} workers")
    print(f"{'task':<14}{'executor':<12}{'wall s':>8}{'× serial':>10}")
    for task in ("mnist-lenet", "digits-mlp"):
        times: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for executor in ("serial", "processes", "ray"):
                started = time.perf_counter()
                res = lrkit.sweep(
                    task,
                    executor=executor,
                    workers=args.workers,
                    store=Path(tmp) / executor,
                    **grid,
                )  # type: ignore[arg-type]
                times[executor] = time.perf_counter() - started
                assert res.ran == 12 and not res.failures
        for executor, seconds in times.items():
            ratio = seconds / times["serial"]
            print(f"{task:<14}{executor:<12}{seconds:>8.1f}{ratio:>10.2f}")


if __name__ == "__main__":
    main()
