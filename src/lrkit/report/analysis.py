"""What a sweep found, as data: the metric, per-config summaries, the ranking, the verdict.

Pure functions of the store's records: no plotting library is imported here, so ``lrkit runs
best`` works on a base install; :mod:`lrkit.report.sweep` renders the same numbers.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from lrkit.sweeps.store import RunRecord

__all__ = [
    "HIGHER_IS_BETTER",
    "ConfigSummary",
    "best_runs",
    "by_line",
    "fold_name",
    "pick_metric",
    "ranked",
    "run_label",
    "status_of",
    "summarize",
    "value_of",
    "verdict",
]

HIGHER_IS_BETTER = {"accuracy"}


def pick_metric(records: list[RunRecord]) -> str:
    """The task's metric if the runs recorded one, else the validation loss."""
    for r in records:
        final = r.summary.get("final", {})
        for key in final:
            if key not in ("epoch", "train_loss", "val_loss"):
                return str(key)
        if "val_loss" in final:
            return "val_loss"
    return "train_loss"


def status_of(record: RunRecord) -> str:
    """``finished``, ``diverged`` or ``failed`` (or ``pending``/``running``): three outcomes a
    report never mixes up (a failed run raised an error; a diverged one trained to inf/nan)."""
    if record.status == "done":
        return "diverged" if record.diverged else "finished"
    return record.status


def value_of(record: RunRecord, metric: str) -> float:
    if record.status != "done" or record.diverged:
        return math.nan
    value = record.summary.get("final", {}).get(metric)
    return math.nan if value is None else float(value)


@dataclass
class ConfigSummary:
    """One (lr, schedule, optimizer) over its seeds and folds."""

    lr: float
    schedule: str
    optimizer: str
    values: list[float]  # finite results
    runs: int
    diverged: int
    failed: int
    by_fold: dict[str, list[float]]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def fold_mean(self, fold: str) -> float | None:
        """The mean over the finished runs validated on ``fold`` (``None`` when none)."""
        values = self.by_fold.get(fold)
        return statistics.fmean(values) if values else None

    @property
    def label(self) -> str:
        return f"{self.schedule} · {self.optimizer} · lr={self.lr:.3g}"


def fold_name(fold: int | None) -> str:
    return "split" if fold is None else f"fold {fold}"


def summarize(records: list[RunRecord], metric: str) -> list[ConfigSummary]:
    groups: dict[tuple[float, str, str], list[RunRecord]] = defaultdict(list)
    for r in records:
        c = r.config
        groups[(c["lr"], c["schedule"], c["optimizer"])].append(r)
    out = []
    for (lr, schedule, optimizer), members in sorted(groups.items()):
        by_fold: dict[str, list[float]] = defaultdict(list)
        values = []
        for r in members:
            v = value_of(r, metric)
            if math.isfinite(v):
                values.append(v)
                by_fold[fold_name(r.config["fold"])].append(v)
        out.append(
            ConfigSummary(
                lr,
                schedule,
                optimizer,
                values,
                len(members),
                sum(r.diverged for r in members),
                sum(r.status == "failed" for r in members),
                dict(by_fold),
            )
        )
    return out


def by_line(summaries: list[ConfigSummary]) -> dict[tuple[str, str], list[ConfigSummary]]:
    """Configs grouped per (schedule, optimizer): one sensitivity line each, LR ascending."""
    lines: dict[tuple[str, str], list[ConfigSummary]] = defaultdict(list)
    for s in sorted(summaries, key=lambda s: s.lr):
        lines[(s.schedule, s.optimizer)].append(s)
    return dict(sorted(lines.items()))


def ranked(summaries: list[ConfigSummary], metric: str) -> list[ConfigSummary]:
    """Best first; a config with any diverged or failed run ranks after every clean one."""
    sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0
    return sorted(
        (s for s in summaries if s.values),
        key=lambda s: (s.diverged + s.failed > 0, sign * s.mean),
    )


def verdict(summaries: list[ConfigSummary], metric: str) -> str:
    """The best config and its spread, in words."""
    order = ranked(summaries, metric)
    if not order:
        return "No run finished: nothing to recommend."
    best = order[0]
    folds = {f for s in summaries for f in s.by_fold}
    text = (
        f"Best: {best.schedule} with {best.optimizer} at lr={best.lr:.3g} — {metric} "
        f"{best.mean:.4g} ± {best.std:.2g} over {len(best.values)} runs"
        + (f" ({len(folds)} folds)" if len(folds) > 1 else "")
        + "."
    )
    line = sorted({s.lr for s in summaries
                   if s.schedule == best.schedule and s.optimizer == best.optimizer})  # fmt: skip
    close = [
        s
        for s in order
        if s.schedule == best.schedule
        and s.optimizer == best.optimizer
        and abs(s.mean - best.mean) <= max(best.std, 1e-12)
    ]
    if len(line) > 1 and best.lr in (line[0], line[-1]):
        side, end = ("largest", "above") if best.lr == line[-1] else ("smallest", "below")
        text += (
            f" It is the {side} LR tried for {best.schedule} with {best.optimizer}: the optimum "
            f"may lie beyond the grid, so extend the grid {end} {best.lr:.3g} before trusting "
            "this choice."
        )
    elif len(close) > 1:
        lo, hi = min(s.lr for s in close), max(s.lr for s in close)
        text += (
            f" LRs from {lo:.3g} to {hi:.3g} are within one standard deviation of it: the "
            "choice is robust across that range."
        )
    else:
        text += " No other LR comes within one standard deviation: the choice is sharp."
    return text


def run_label(record: RunRecord) -> str:
    """A run's config in one line: schedule, optimizer, LR, seed and fold."""
    c = record.config
    return (f"{c['schedule']} · {c['optimizer']} · lr={c['lr']:.3g} · seed {c['seed']} · "
            f"{fold_name(c['fold'])}")  # fmt: skip


def best_runs(records: list[RunRecord], metric: str, n: int = 5) -> list[RunRecord]:
    """The ``n`` finished, non-diverged runs with the best final ``metric``, best first."""
    sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0
    finite = [r for r in records if math.isfinite(value_of(r, metric))]
    return sorted(finite, key=lambda r: sign * value_of(r, metric))[:n]
