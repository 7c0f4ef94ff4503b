"""Where the suite keeps its results, and the seeds and protocols every module shares."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path("benchmarks/results")
SEEDS = tuple(range(4))
PROTOCOLS = ("constant", "one_cycle", "warmup_cosine")
HIGHER_IS_BETTER = {"accuracy"}
