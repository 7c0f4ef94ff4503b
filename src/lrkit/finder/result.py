"""What a range test measured: :class:`Curve` (one run) and :class:`FinderResult` (all runs).

Data only: the result holds the curves and the summarized suggestions, and asks
:mod:`lrkit.suggest.policy` for everything that is policy (schedule factors, caveats).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrkit.suggest import policy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lrkit.loggers import Logger

__all__ = ["Curve", "FinderResult"]


@dataclass
class Curve:
    """One range test: the LRs tried, the raw and smoothed losses, and why it stopped."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    val_losses: list[float] | None = None
    stop_reason: str = "completed"
    stop_step: int | None = None

    def suggestion_curve(self, raw: bool = False) -> list[float]:
        """The curve a rule reads: the validation loss when there is one, else the train
        loss, EMA-smoothed or (``raw=True``) as measured."""
        if self.val_losses is not None:
            return self.val_losses
        return self.losses if raw else self.smoothed


@dataclass
class FinderResult:
    """What :func:`find_lr` measured and what it suggests.

    ``lrs``, ``losses``, ``smoothed`` (and ``val_losses``) are the first run's curve;
    ``curves`` holds every run. ``suggestions`` maps each rule of :mod:`lrkit.suggest` (and a
    custom ``method``, by its name) to its LR (the geometric median over runs) or ``None``;
    ``notes`` says why for each; ``spread`` is the max-min of each rule's log10 suggestions
    over runs (0 for one run);
    ``data_passes`` is how many times one range test went through the training data (``None``
    when the loader has no length). :attr:`caveats` says when to trust a suggestion less;
    ``run_caveats`` holds what the run itself could not control (a loader's order);
    ``suggestion_caveats`` what the chosen rule said (an estimate set aside; after a decline,
    what to do).
    """

    curves: list[Curve]
    suggestions: dict[str, float | None]
    notes: dict[str, str]
    method: str = "auto"
    for_schedule: str = "constant"
    spread: dict[str, float] = field(default_factory=dict)
    per_run: dict[str, list[float | None]] = field(default_factory=dict)
    group_ratios: list[float] = field(default_factory=lambda: [1.0])
    group: int | str | None = None
    num_steps: int = 0
    elapsed_s: float = 0.0
    data_passes: float | None = None
    run_caveats: list[str] = field(default_factory=list)
    suggestion_caveats: list[str] = field(default_factory=list)

    @property
    def lrs(self) -> list[float]:
        return self.curves[0].lrs

    @property
    def losses(self) -> list[float]:
        return self.curves[0].losses

    @property
    def smoothed(self) -> list[float]:
        return self.curves[0].smoothed

    @property
    def val_losses(self) -> list[float] | None:
        return self.curves[0].val_losses

    @property
    def stop_reason(self) -> str:
        return self.curves[0].stop_reason

    @property
    def stop_step(self) -> int | None:
        return self.curves[0].stop_step

    @property
    def runs(self) -> int:
        return len(self.curves)

    @property
    def suggestion(self) -> float | None:
        """The recommended LR for ``for_schedule``: the ``method`` rule's suggestion (``"auto"``
        by default) times the schedule's factor (see :data:`lrkit.suggest.SCHEDULE_FACTORS`)."""
        return self.suggestion_for(self.for_schedule)

    def joined(self, more: FinderResult, method: Any = "auto") -> FinderResult:
        """These runs and then ``more``'s as one result: what one :func:`~lrkit.find_lr` with
        all the runs reports (the same curves, so the same suggestions, spread and caveats).
        ``method``: the rule ``find_lr`` was given (a name or a callable)."""
        from dataclasses import replace

        from lrkit.suggest import METHODS, resolve_method, summarize

        name, rule = resolve_method(method)
        curves = [*self.curves, *more.curves]
        summary = summarize(curves, METHODS | {name: rule}, num_steps=self.num_steps)
        return replace(
            self, curves=curves, suggestions=summary.suggestions, notes=summary.notes,
            spread=summary.spread, per_run=summary.per_run,
            elapsed_s=self.elapsed_s + more.elapsed_s,
            run_caveats=list(dict.fromkeys([*self.run_caveats, *more.run_caveats])),
            suggestion_caveats=summary.caveats.get(name, []),
        )  # fmt: skip

    def suggestion_for(self, schedule: str) -> float | None:
        """The suggested (peak) LR for ``schedule``: ``constant``, ``one_cycle`` or ``cosine``
        (``auto``'s LR times the schedule's measured factor; other methods as they are)."""
        return policy.suggestion_for(self.suggestions, self.method, schedule)

    @property
    def suggestion_label(self) -> str:
        """How the suggestion reads everywhere (CLI, repr, figures, reports): the LR for the
        chosen schedule and the rule it comes from, e.g. ``"suggestion 0.0992 for a constant
        schedule (auto rule 0.148 x 0.67)"``."""
        lr = self.suggestion
        if lr is None:
            return f"no suggestion ({self.method}: {self.notes.get(self.method, 'declined')})"
        text = f"suggestion {lr:.3g} for a {self.for_schedule} schedule"
        raw = self.suggestions.get(self.method)
        if raw is not None and raw != lr:
            return text + f" ({self.method} rule {raw:.3g} x {lr / raw:.2g})"
        return text + f" ({self.method} rule)"

    def rule_label(self, name: str) -> str:
        """A rule's line as every view labels it: ``"rule auto (raw) 0.148"``."""
        lr = self.suggestions.get(name)
        return f"rule {name} (raw) {'—' if lr is None else f'{lr:.3g}'}"

    @property
    def unstable(self) -> list[str]:
        """Rules whose suggestion moved more than half a decade between runs."""
        return policy.unstable(self.spread)

    @property
    def tiny_data(self) -> bool:
        """Whether one range test went through the training data
        :data:`lrkit.suggest.TINY_DATA_PASSES` times or more."""
        return policy.tiny_data(self.data_passes)

    @property
    def caveats(self) -> list[str]:
        """Why to trust the suggestion less, each with what to do; empty when none applies."""
        return (
            list(self.suggestion_caveats)
            + policy.caveats(self.spread, self.data_passes)
            + list(self.run_caveats)
        )

    @property
    def group_suggestions(self) -> list[float] | None:
        """The suggestion for each param group, keeping the optimizer's LR ratios (``None``
        after ``find_lr(group=i)``, which suggests for group ``i`` alone)."""
        lr = self.suggestion
        if lr is None or self.group is not None:
            return None
        return [lr * r for r in self.group_ratios]

    def __repr__(self) -> str:
        def fmt(v: float | None) -> str:
            return "None" if v is None else f"{v:.3g}"

        rules = ", ".join(f"{m}={fmt(v)}" for m, v in self.suggestions.items())
        text = (
            f"FinderResult(suggestion={fmt(self.suggestion)} [{self.for_schedule} schedule, "
            f"from {self.method}], rules (raw): {rules}, "
            f"points={len(self.lrs)}/{self.num_steps}, runs={self.runs}, "
            f"stop={self.stop_reason!r}"
        )
        if self.unstable:
            text += f", UNSTABLE over runs: {', '.join(self.unstable)}"
        if self.tiny_data:
            text += f", TINY DATA: {self.data_passes:.1f} passes"
        return text + ")"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "method": self.method,
            "for_schedule": self.for_schedule,
            "suggestion": self.suggestion,
            "suggestions": dict(self.suggestions),
            "notes": dict(self.notes),
            "spread": dict(self.spread),
            "per_run": {k: list(v) for k, v in self.per_run.items()},
            "unstable": self.unstable,
            "group_ratios": list(self.group_ratios),
            "group": self.group,
            "num_steps": self.num_steps,
            "elapsed_s": self.elapsed_s,
            "data_passes": self.data_passes,
            "run_caveats": list(self.run_caveats),
            "suggestion_caveats": list(self.suggestion_caveats),
            "curves": [vars(c).copy() for c in self.curves],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinderResult:
        return cls(
            curves=[Curve(**c) for c in data["curves"]],
            suggestions=dict(data["suggestions"]),
            notes=dict(data["notes"]),
            method=data["method"],
            for_schedule=data.get("for_schedule", "constant"),
            spread=dict(data["spread"]),
            per_run={k: list(v) for k, v in data["per_run"].items()},
            group_ratios=list(data["group_ratios"]),
            group=data.get("group"),
            num_steps=int(data["num_steps"]),
            elapsed_s=float(data["elapsed_s"]),
            data_passes=data.get("data_passes"),
            run_caveats=list(data.get("run_caveats", [])),
            suggestion_caveats=list(data.get("suggestion_caveats", [])),
        )

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON to ``path`` and return the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FinderResult:
        """Read a result written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, path: str | Path | None = None, ax: Axes | None = None) -> Figure:
        """Loss against LR (log x) with every suggestion marked; bands show spread over runs.

        Draws into ``ax`` when given, else into a new figure; saves to ``path`` when given.
        Never shows a window or prints.
        """
        from lrkit._plot import plot_finder

        return plot_finder(self, path=path, ax=ax)

    def log(self, logger: Logger | str, *, prefix: str = "finder", **kwargs: Any) -> Logger:
        """Send the curves and suggestions to a tracker; return the logger.

        ``logger``: a name (``"tensorboard"``, ``"mlflow"``, ``"wandb"``; built with
        ``kwargs``, e.g. ``log_dir=``, ``tracking_uri=``, ``dir=``, and closed when done) or a
        :class:`lrkit.loggers.Logger` (left open). Metrics ``{prefix}/lr``, ``{prefix}/loss``,
        ``{prefix}/smoothed`` at step = point index; the suggestions as params.
        """
        from lrkit.loggers import log_finder, opened

        with opened(logger, **kwargs) as (target,):
            log_finder(target, self, prefix)
        return target
