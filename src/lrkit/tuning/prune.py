"""When to stop a candidate early: successive halving that avoids the short-horizon trap.

At each rung (after 1/3 and 2/3 of the epochs) the candidates still training are ranked by
their validation metric at that epoch (the mean over seeds) and a candidate is stopped
unless it is

- in the better half (rounded up), or
- within ``margin`` of the leader (relative, on the error: ``1 - accuracy`` or the loss), or
- the next LR above the leader's.

The last rule is the guard against the short-horizon trap: early in a run a smaller LR looks
better than it will end (it descends faster at first; a larger LR catches up once its
schedule anneals or its noise averages out), so the leader at a rung tends to sit below the
final winner, and the candidate just above it is the one most likely to overtake it. Smaller
LRs that are behind early do not catch up, so they are the ones halving stops. Members whose
loss turned NaN/inf are stopped at the end of the epoch whatever the rung.
``benchmarks/bench_tune.py`` measures this rule against training every candidate fully.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["MARGIN", "error_of", "rungs", "to_stop"]

MARGIN = 0.05
"""Relative distance to the leader's error within which a candidate always survives."""


def rungs(epochs: int) -> tuple[int, ...]:
    """The epochs after which candidates are compared: 1/3 and 2/3 of the budget (rounded
    down, distinct, at least 1 and before the last epoch)."""
    return tuple(sorted({e for e in (epochs // 3, 2 * epochs // 3) if 1 <= e < epochs}))


def error_of(metric: str, value: float) -> float:
    """The metric as an error (lower is better): ``1 - accuracy``, any other as it is."""
    return 1.0 - value if metric == "accuracy" else value


def to_stop(errors: Mapping[float, float], margin: float = MARGIN) -> set[float]:
    """The LRs to stop among ``errors`` (``{lr: error at this rung}``, non-finite = diverged)."""
    stop = {lr for lr, e in errors.items() if not math.isfinite(e)}
    alive = sorted((e, lr) for lr, e in errors.items() if math.isfinite(e))
    if len(alive) < 2:
        return stop
    best, leader = alive[0]
    keep = {lr for _, lr in alive[: math.ceil(len(alive) / 2)]}
    keep |= {lr for e, lr in alive if e - best <= margin * abs(best)}
    above = sorted(lr for _, lr in alive if lr > leader)
    if above:
        keep.add(above[0])
    return stop | {lr for _, lr in alive if lr not in keep}
