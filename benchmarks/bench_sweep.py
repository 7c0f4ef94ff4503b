"""Sweep executors: wall time of the same grid on serial, processes, Ray and auto, vs serial.

Grids (6 LRs × 2 seeds = 12 runs, each run single-threaded):

- ``long``: mnist-lenet, 10 epochs (runs of about 5 s),
- ``1s``: mnist-lenet, 2 epochs (runs of about 1 s),
- ``tiny``: digits-mlp, 2 epochs (runs of about 0.07 s: overhead-bound).

Every executor writes its own fresh store; the ratio is serial's wall time over the
executor's in the same run (>1: faster than serial), start-up of worker processes / the local
Ray cluster included (``ray``). ``ray@`` joins the cluster at ``--ray-address`` instead (start
one first: ``ray start --head --num-cpus 2``), as a user with a running cluster would: its
start-up is not counted, its actors' is. ``--repeat N`` runs everything N times and prints the
median ratios. The load average is printed: the machine may be shared.

    .venv/bin/python benchmarks/bench_sweep.py [--workers 2] [--grids long,1s,tiny]
        [--executors serial,processes,ray,auto] [--ray-address 127.0.0.1:6379] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    parser.add_argument("--ray-address", default=None, help="a running cluster, for ray@")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    executors = args.executors.split(",")
    if "ray@" in executors and not args.ray_address:
        parser.error("ray@ needs --ray-address (start a cluster with `ray start --head`)")
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs")
    print(f"12 runs per grid, {args.workers} workers")
    print(f"{'grid':<6}{'task':<13}{'executor':<11}{'wall s':>8}{'s/run':>8}{'speed-up':>10}")
    ratios: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for grid in args.grids.split(","):
            task, epochs = GRIDS[grid]
            times: dict[str, float] = {}
            with tempfile.TemporaryDirectory() as tmp:
                for executor in executors:
                    address = args.ray_address if executor == "ray@" else None
                    started = time.perf_counter()
                    res = lrkit.sweep(task, lrs=lrkit.logspace(1e-3, 0.3, 6), seeds=(0, 1),
                                      epochs=epochs, executor=executor.rstrip("@"),
                                      workers=args.workers, address=address,
                                      store=Path(tmp) / executor, progress=False,
                                      report=False)  # fmt: skip
                    times[executor] = time.perf_counter() - started
                    assert res.ran == 12 and not res.failures
                    per_run = sum(r.wall_s or 0.0 for r in res.runs) / 12
                    speedup = times.get("serial", float("nan")) / times[executor]
                    ratios.setdefault((grid, executor), []).append(speedup)
                    print(f"{grid:<6}{task:<13}{executor:<11}{times[executor]:>8.1f}"
                          f"{per_run:>8.2f}{speedup:>10.2f}", flush=True)  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    print(f"median speed-up over {args.repeat} repeat(s):")
    for (grid, executor), values in ratios.items():
        print(
            f"{grid:<6}{executor:<11}{statistics.median(values):>6.2f}  "
            f"({', '.join(f'{v:.2f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
