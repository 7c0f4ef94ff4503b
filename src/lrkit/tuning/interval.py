"""Where to look: the candidate interval around the range test's suggestion (pure policy).

The range test reads an LR off a short curve; the suggestion benchmark measured how far the
full-budget optimum lies from it: typically within half a decade, further where the finder is
unsure (its runs disagree, or it flags caveats such as tiny data). So the interval is the
suggestion × 10^(±w) with

    w = 0.5 + spread + 0.25 × (number of caveats)     (decades, at most 1.5)

where ``spread`` is the max - min of the runs' log10 suggestions (a single run cannot measure
it: ``UNMEASURED_SPREAD`` stands in). Without a suggestion the interval falls back to a wide
one (2.5 decades below the LR where the test diverged, or three decades by optimizer family),
and says so.

The range test itself is sized to the budget (:func:`range_test_size`): three runs when
they cost at most ``FINDER_SHARE`` of one full-budget run, else one — repeated with three
when its reading is doubtful (:func:`doubtful`: no suggestion, or ``DOUBT_CAVEATS``
caveats; then two more are run, and the interval is the three runs'). On a long budget
that changes nothing; on the suite's few-epoch budgets (40-200 steps a run) three 100-step
runs cost 1.5-7.5 runs, more than the candidates. Shortening the run instead (one run of
half the budget, at least 50 steps) was tried once on six suite tasks and dropped: its
suggestions moved decades off on tiny data and on the ViT (docs/tune.md; the variant is not
kept in ``benchmarks/bench_tune.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrkit.finder import FinderResult

__all__ = ["BASE_HALF_WIDTH", "Interval", "candidate_interval", "doubtful", "log_points",
           "range_test_size"]  # fmt: skip

BASE_HALF_WIDTH = 0.5
"""Half-width in decades when the finder is sure (no spread, no caveat)."""
CAVEAT_WIDTH = 0.25
"""Decades added per caveat of the range test."""
UNMEASURED_SPREAD = 0.5
"""Decades that stand in for the spread when the range test ran once."""
FINDER_RUNS = 3
FINDER_STEPS = 100
FINDER_SHARE = 0.5
"""The most of one full-budget run that tune's three range-test runs may cost."""
DOUBT_CAVEATS = 2
"""Caveats on a single range test that make tune repeat it with three runs. One caveat is
common on small data (the test passes over it many times); on the suite a single run read
decades off only with two (linnerud-mlp: a noise minimum set aside + tiny data), and three
runs' median fixed it (``benchmarks/bench_tune.py``)."""
MAX_HALF_WIDTH = 1.5
FALLBACK = {"sgd": (1e-3, 1.0)}
"""Three decades by optimizer family when the range test gives nothing to centre on."""
FALLBACK_ADAPTIVE = (1e-4, 1e-1)
SCHEDULE_OF = {"constant": "constant", "one_cycle": "one_cycle", "cosine": "cosine",
               "warmup_cosine": "cosine"}  # fmt: skip
"""The finder's schedule factor that each tune protocol uses (warmup-cosine peaks like cosine)."""


@dataclass(frozen=True)
class Interval:
    """``[lo, hi]`` in LR, the ``center`` it was built around (``None``: a fallback) and
    why (``reason``), with the caveats that made it wider."""

    lo: float
    hi: float
    center: float | None
    reason: str
    caveats: tuple[str, ...] = ()

    @property
    def decades(self) -> float:
        return math.log10(self.hi / self.lo)


def log_points(lo: float, hi: float, k: int) -> list[float]:
    """``k`` LRs evenly spaced in log from ``lo`` to ``hi`` (the centre alone when k = 1)."""
    if k == 1:
        return [math.sqrt(lo * hi)]
    return [lo * (hi / lo) ** (i / (k - 1)) for i in range(k)]


def range_test_size(budget_steps: int, runs: int | None, num_steps: int | None) -> int:
    """The number of range-test runs for a budget of ``budget_steps`` optimizer steps a run:
    ``runs`` when set, else three when they cost at most ``FINDER_SHARE`` of a run, else one
    (``num_steps``: each run's length, 100 when ``None``)."""
    if runs is not None:
        return runs
    steps = num_steps if num_steps is not None else FINDER_STEPS
    return FINDER_RUNS if FINDER_RUNS * steps <= FINDER_SHARE * budget_steps else 1


def doubtful(result: FinderResult, schedule: str) -> bool:
    """Whether a range test's reading is too unsure to centre the candidates on alone."""
    center = result.suggestion_for(SCHEDULE_OF[schedule])
    none = center is None or not math.isfinite(center) or center <= 0  # as candidate_interval
    return none or len(result.caveats) >= DOUBT_CAVEATS


def candidate_interval(result: FinderResult, schedule: str, optimizer: str) -> Interval:
    """The interval of LRs to train for ``schedule`` (its peak LR), from a range test."""
    center = result.suggestion_for(SCHEDULE_OF[schedule])
    spread = result.spread.get(result.method, 0.0) if result.runs > 1 else UNMEASURED_SPREAD
    caveats = tuple(result.caveats)
    if center is None or not math.isfinite(center) or center <= 0:
        why = result.notes.get(result.method, "no suggestion")
        stop = result.stop_step
        if result.stop_reason != "completed" and stop is not None and stop > 0:
            top = result.lrs[min(stop, len(result.lrs) - 1)]
            return Interval(top * 10**-2.5, top, None,
                            f"the range test gave no suggestion ({why}); 2.5 decades below "
                            f"where it stopped ({top:.3g})", caveats)  # fmt: skip
        lo, hi = FALLBACK.get(optimizer, FALLBACK_ADAPTIVE)
        return Interval(lo, hi, None,
                        f"the range test gave no suggestion ({why}); the default interval "
                        f"for {optimizer}", caveats)  # fmt: skip
    if not math.isfinite(spread):
        spread = 0.0
    half = min(MAX_HALF_WIDTH, BASE_HALF_WIDTH + spread + CAVEAT_WIDTH * len(caveats))
    parts = [f"±{half:.2g} decades around the suggestion {center:.3g} ({schedule})"]
    if result.runs == 1:
        parts.append(f"one run: spread taken as {UNMEASURED_SPREAD} decades")
    elif spread > 0:
        parts.append(f"spread {spread:.2g} decades over {result.runs} runs")
    if caveats:
        parts.append(f"{len(caveats)} caveat(s)")
    return Interval(center * 10**-half, center * 10**half, center, "; ".join(parts), caveats)
