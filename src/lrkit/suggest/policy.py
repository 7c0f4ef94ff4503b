"""From range-test curves to a recommendation: which rule, how runs combine, when to doubt.

The rules (:mod:`lrkit.suggest.rules`) read one curve. The policy here reads all the runs of
a range test: each rule's geometric median and spread over runs (:func:`summarize`), the
factor that turns ``auto``'s LR into a schedule's peak LR (:func:`suggestion_for`), and the
caveats (:func:`caveats`). :class:`lrkit.FinderResult` holds data and asks this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lrkit.suggest.rules import (
    AUTO_MAX_DISAGREEMENT,
    AUTO_NOISE_HEAD,
    METHODS,
    Rule,
    Suggestion,
    reads_raw,
    takes_num_steps,
)

__all__ = [
    "AUTO_MAX_DISAGREEMENT",
    "AUTO_NOISE_HEAD",
    "SCHEDULE_FACTORS",
    "TINY_DATA_PASSES",
    "UNSTABLE_DECADES",
    "Summary",
    "caveats",
    "resolve_method",
    "suggestion_for",
    "summarize",
    "tiny_data",
    "unstable",
]

UNSTABLE_DECADES = 0.5
"""A suggestion whose runs spread over more than this many decades is flagged unstable."""

TINY_DATA_PASSES = 5.0
"""A range test that goes through the training data this many times or more is flagged.

On so small a dataset the loss falls for the training it has had as much as for the LR, and
train loss says nothing of overfitting. In the suggestion-quality suite the three tasks whose
range test went through the data 7-12 times had the three largest regrets for a constant LR
(1.5-3.8%; the five others, 2-4 passes, at most 1.4%) and for one-cycle (1.1-5.4%; at most
0.8%). ``docs/suggestion.md`` has the numbers."""

SCHEDULE_FACTORS: dict[str, float] = {"constant": 0.53, "one_cycle": 1.0, "cosine": 1.0}
"""``auto``'s suggestion for a schedule = its LR × this factor (the schedule's peak LR).

Judged held out on the 16-task suggestion suite (``make bench-suggest``; ``python -m
benchmarks.suggest.fit --thresholds``: each task scored with a factor fitted on the other 15).
For a constant LR the fitted factor carries (held out 3.33% median / 83.5% worst regret,
against 3.35% / 89.7% for ``auto`` alone), so it ships, fitted on all 16 tasks: about half of
``auto``'s LR. For one-cycle and warmup+cosine (``cosine``) it does not: a factor fitted on
15 tasks (1.68-2.24 and 1.26-2.11 across folds) scores *worse* on the 16th than none (5.02% /
69.2% against 2.81% / 71.7% for one-cycle; 3.19% / 66.6% against 2.12% / 69.1% for
warmup+cosine), so their factor is 1: the peak LR is ``auto``'s LR."""


class CurveLike(Protocol):
    """What the policy reads of a range test's curve (a :class:`lrkit.finder.Curve`)."""

    @property
    def lrs(self) -> list[float]: ...

    @property
    def stop_reason(self) -> str: ...

    def suggestion_curve(self, raw: bool = False) -> list[float]: ...


def resolve_method(method: str | Callable[..., Suggestion]) -> tuple[str, Rule]:
    """The name and the rule for ``find_lr(method=...)``: a name from :data:`METHODS`, or any
    callable ``(lrs, losses) -> Suggestion`` (named by its ``__name__``)."""
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(
                f"method must be one of {sorted(METHODS)} or a function (lrs, losses) -> "
                f"Suggestion (got {method!r})"
            )
        return method, METHODS[method]
    if not callable(method):
        raise ValueError(
            f"method must be one of {sorted(METHODS)} or a function (lrs, losses) -> "
            f"Suggestion (got {method!r})"
        )
    name = str(getattr(method, "__name__", type(method).__name__))
    if name in METHODS and METHODS[name] is not method:
        raise ValueError(
            f"method {method!r} is named {name!r}, like a built-in rule; rename the function"
        )
    return name, method


@dataclass(frozen=True)
class Summary:
    """Each rule's suggestion over runs: the geometric median (``None`` when fewer than half
    the runs found one), why (``notes``), the max-min of the log10 LRs (``spread``), each
    run's LR (``per_run``) and what the user should know (``caveats``: the rules' own, and
    what to do when a rule gave no suggestion)."""

    suggestions: dict[str, float | None]
    notes: dict[str, str]
    spread: dict[str, float]
    per_run: dict[str, list[float | None]]
    caveats: dict[str, list[str]] = field(default_factory=dict)


def _as_recorded(curve: CurveLike, raw: bool) -> tuple[np.ndarray, np.ndarray]:
    """The curve as fastai's Recorder would hold it: lrkit stops at a NaN/inf loss without
    recording it, fastai records it (an inf ends the test; after a NaN fastai runs on, and
    its rules cut the curve at the first NaN). Its LR is never read: the trim drops it."""
    lrs = np.asarray(curve.lrs, dtype=np.float64)
    losses = np.asarray(curve.suggestion_curve(raw), dtype=np.float64)
    for value in ("nan", "inf"):
        if curve.stop_reason.startswith(f"non-finite loss ({value})") and lrs.size:
            step = lrs[-1] / lrs[-2] if lrs.size > 1 else 2.0
            lrs = np.append(lrs, lrs[-1] * step)
            losses = np.append(losses, float(value))
    return lrs, losses


def _apply(rule: Rule, curve: CurveLike, num_steps: int | None) -> Suggestion:
    raw = reads_raw(rule)
    if takes_num_steps(rule):
        lrs, losses = _as_recorded(curve, raw)
        return rule(lrs, losses, num_steps=num_steps)  # type: ignore[call-arg]
    return rule(np.asarray(curve.lrs), np.asarray(curve.suggestion_curve(raw)))


def summarize(
    curves: Sequence[CurveLike], rules: Mapping[str, Rule] = METHODS, num_steps: int | None = None
) -> Summary:
    """Apply every rule to every curve (raw or smoothed, as the rule reads) and combine runs.

    ``num_steps`` (the planned number of steps) goes to the rules that take it
    (:func:`lrkit.suggest.takes_num_steps`: fastai's, which trim by it)."""
    suggestions: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    spread: dict[str, float] = {}
    per_run: dict[str, list[float | None]] = {}
    caveats: dict[str, list[str]] = {}
    for name, rule in rules.items():
        results = [_apply(rule, c, num_steps) if c.lrs else None for c in curves]
        runs = [r.lr if r is not None else None for r in results]
        per_run[name] = runs
        said = [r.caveat for r in results if r is not None and r.caveat]
        caveats[name] = list(dict.fromkeys(said))
        found = [math.log10(lr) for lr in runs if lr is not None]
        if len(found) * 2 < len(curves) or not found:
            suggestions[name] = None
            first = next((r for r in results if r is not None and r.lr is None), None)
            notes[name] = first.note if first is not None else "no points recorded"
            if not any(r is not None and r.lr is None and r.caveat for r in results):
                caveats[name].append(
                    f"no {name} suggestion ({notes[name]}): rerun find_lr with more steps or "
                    "a wider range (start_lr, end_lr), or read the LR off res.plot()"
                )
            continue
        suggestions[name] = float(10 ** np.median(found))
        spread[name] = float(max(found) - min(found))
        first_ok = next(r for r in results if r is not None and r.lr is not None)
        notes[name] = (
            first_ok.note
            if len(curves) == 1
            else f"geometric median of {len(found)}/{len(curves)} runs, "
            f"spread {spread[name]:.2f} decades"
        )
    return Summary(suggestions, notes, spread, per_run, caveats)


def check_schedule(schedule: str, argument: str = "schedule") -> None:
    """Refuse a schedule with no measured factor."""
    if schedule not in SCHEDULE_FACTORS:
        raise ValueError(
            f"{argument} must be one of {', '.join(SCHEDULE_FACTORS)} (got {schedule!r})"
        )


def suggestion_for(
    suggestions: Mapping[str, float | None], method: str, schedule: str
) -> float | None:
    """The suggested (peak) LR for ``schedule``: ``auto``'s LR times the schedule's measured
    factor (:data:`SCHEDULE_FACTORS`); any other method's LR as it is."""
    check_schedule(schedule)
    lr = suggestions.get(method)
    if lr is None or method != "auto":
        return lr
    return lr * SCHEDULE_FACTORS[schedule]


def unstable(spread: Mapping[str, float]) -> list[str]:
    """Rules whose suggestion moved more than :data:`UNSTABLE_DECADES` between runs."""
    return [m for m, s in spread.items() if s > UNSTABLE_DECADES]


def tiny_data(data_passes: float | None) -> bool:
    """Whether one range test went through the data :data:`TINY_DATA_PASSES` times or more."""
    return data_passes is not None and data_passes >= TINY_DATA_PASSES


def caveats(spread: Mapping[str, float], data_passes: float | None) -> list[str]:
    """Why to trust a suggestion less, each with what to do; empty when none applies."""
    out = []
    moved = unstable(spread)
    if moved:
        out.append(
            f"unstable over runs: {', '.join(moved)} moved more than "
            f"{UNSTABLE_DECADES} decade between data orders; prefer a stable rule"
        )
    if tiny_data(data_passes):
        out.append(
            f"the range test went through the training data {data_passes:.1f} times: "
            "on a dataset this small the loss falls from training as much as from the LR; "
            "confirm with a short sweep around the suggestion (lrs='around-finder')"
        )
    return out
