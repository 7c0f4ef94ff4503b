"""Where the suite keeps its results, and the seeds and protocols every module shares."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path("benchmarks/results")
SEEDS = tuple(range(4))
PROTOCOLS = ("constant", "one_cycle", "warmup_cosine")
HIGHER_IS_BETTER = {"accuracy"}
NOISE_FLOOR = "grid, best LR of the other seeds (noise floor)"
"""Not a method: the grid LR best on the other seeds' full runs, scored on this seed — a
reference for seed-to-seed noise (a rule reading one range test is not expected to beat
it; a pick off the grid, or a lucky one, can on a given seed)."""
