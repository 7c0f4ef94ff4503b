"""When to stop a candidate early: successive halving that avoids the short-horizon trap.

At each rung (after 1/4 and 1/2 of the epochs) the candidates still training are ranked by
their validation metric at that epoch (the mean over seeds) and a candidate is stopped
unless it is

- in the better half (rounded up), or
- a neighbour of the leader: the next LR above it or the next below it.

The neighbours are the guard against the short-horizon trap: early in a run the leader is
often not the final winner — a larger LR catches up once its schedule anneals or its noise
averages out, and where overfitting sets the optimum a smaller LR overtakes it at the end —
and the winner is almost always next to the early leader. LRs further away that are behind
early do not catch up, so they are the ones halving stops. Members whose loss turned
NaN/inf are stopped at the end of the epoch whatever the rung.

Chosen on the suggestion suite's grid runs (16 tasks × 3 protocols × 4 seeds, every
epoch's metric stored), leave-one-task-out among 22 rules (rungs at 1/4-1/2, 1/3-2/3, 1/2;
keep the best 1, 2, a third or half; a 5% margin; the neighbour above or both):
``benchmarks/bench_tune_policy.py``. With 5 candidates and at most 3.5 runs of them it was
chosen in 15 of 16 folds (held-out median regret 0.06%, 3.44 runs); the rule it replaced
(1/3 and 2/3, half + 5% margin + the neighbour above) scores 0.32% at 3.48 runs. With 2
candidates it never stops a finite one (both are the leader or its neighbour), with 3 at most
one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["RULE", "error_of", "rungs", "to_stop"]

RULE = "rungs 1/4, 1/2: better half + the leader's neighbours"
"""The rule in words; part of a stored tune's identity, so that runs pruned by another rule
are not read back as this one's."""


def rungs(epochs: int) -> tuple[int, ...]:
    """The epochs after which candidates are compared: 1/4 and 1/2 of the budget (rounded
    down, distinct, at least 1 and before the last epoch)."""
    return tuple(sorted({e for e in (epochs // 4, epochs // 2) if 1 <= e < epochs}))


def error_of(metric: str, value: float) -> float:
    """The metric as an error (lower is better): ``1 - accuracy``, any other as it is."""
    return 1.0 - value if metric == "accuracy" else value


def to_stop(errors: Mapping[float, float]) -> set[float]:
    """The LRs to stop among ``errors`` (``{lr: error at this rung}``, non-finite = diverged)."""
    stop = {lr for lr, e in errors.items() if not math.isfinite(e)}
    alive = sorted((e, lr) for lr, e in errors.items() if math.isfinite(e))
    if len(alive) < 2:
        return stop
    leader = alive[0][1]
    keep = {lr for _, lr in alive[: math.ceil(len(alive) / 2)]}
    above = [lr for _, lr in alive if lr > leader]
    below = [lr for _, lr in alive if lr < leader]
    keep |= {min(above)} if above else set()
    keep |= {max(below)} if below else set()
    return stop | {lr for _, lr in alive if lr not in keep}
