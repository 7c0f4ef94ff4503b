"""What a tune did: :class:`TuneResult` (data, save/load, plot) and its candidates."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrkit.finder import FinderResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import Tensor, nn

__all__ = ["Candidate", "TuneResult"]


@dataclass(frozen=True)
class Candidate:
    """One trained candidate: its LR and seed, its validation ``metric`` at the last epoch
    it trained (``None`` when it diverged), the epoch it ``stopped_at`` (the budget when it
    ran to the end), whether it ``diverged`` or was ``pruned``, its ``round`` (1 or 2) and
    its run id in the store (``None`` without a store)."""

    lr: float
    seed: int
    metric: float | None
    stopped_at: int
    diverged: bool
    pruned: bool
    round: int = 1
    run_id: str | None = None

    @property
    def completed(self) -> bool:
        return not self.diverged and not self.pruned


@dataclass
class TuneResult:
    """The chosen LR and how it was found.

    ``lr``: the candidate LR with the best seed-mean ``metric`` among those whose every seed
    ran the full budget (``None`` only when none did; ``caveats`` then says why).
    ``candidates``: every trained (lr, seed). ``interval``: the LR range searched in round 1.
    ``cost``: compute in run-equivalents (each member's epochs trained / ``epochs``, summed,
    plus the range test's steps as a fraction of one run); ``wall_s``: seconds, range test
    included. ``model``: the winner's trained model (the seed with the best metric at the
    chosen LR; not saved by :meth:`save`: use ``torch.save(result.model.state_dict(), ...)``).
    ``sweeps``: the ids of the store's sweeps holding the runs (one per round).
    """

    lr: float | None
    metric: str
    schedule: str
    epochs: int
    candidates: list[Candidate]
    interval: tuple[float, float]
    cost: float
    wall_s: float
    executor: str
    caveats: list[str] = field(default_factory=list)
    finder: FinderResult | None = None
    sweeps: list[str] = field(default_factory=list)
    store: str | None = None
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    @property
    def state_dict(self) -> dict[str, Tensor] | None:
        """The winner's weights (``None`` when no candidate completed)."""
        return None if self.model is None else self.model.state_dict()

    def by_lr(self) -> dict[float, list[Candidate]]:
        """The candidates grouped by LR (ascending)."""
        out: dict[float, list[Candidate]] = {}
        for c in sorted(self.candidates, key=lambda c: (c.lr, c.seed)):
            out.setdefault(c.lr, []).append(c)
        return out

    def mean_metric(self, lr: float) -> float | None:
        """The seed-mean final metric at ``lr``, or ``None`` unless every seed completed."""
        runs = self.by_lr().get(lr, [])
        if not runs or not all(c.completed and c.metric is not None for c in runs):
            return None
        return sum(c.metric for c in runs) / len(runs)  # type: ignore[misc]

    def table(self) -> list[dict[str, Any]]:
        """One row per candidate (lr, seed, metric, stopped_at, diverged, pruned, round)."""
        return [asdict(c) for c in sorted(self.candidates, key=lambda c: (c.round, c.lr, c.seed))]

    def __repr__(self) -> str:
        lr = "None" if self.lr is None else f"{self.lr:.4g}"
        return (
            f"TuneResult(lr={lr}, {self.metric}="
            f"{self._fmt(None if self.lr is None else self.mean_metric(self.lr))}, "
            f"candidates={len(self.candidates)}, cost={self.cost:.2f} runs, "
            f"wall_s={self.wall_s:.1f}, caveats={len(self.caveats)})"
        )

    @staticmethod
    def _fmt(value: float | None) -> str:
        return "None" if value is None else f"{value:.4g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr, "metric": self.metric, "schedule": self.schedule,
            "epochs": self.epochs, "candidates": self.table(),
            "interval": list(self.interval), "cost": self.cost, "wall_s": self.wall_s,
            "executor": self.executor, "caveats": list(self.caveats),
            "finder": None if self.finder is None else self.finder.to_dict(),
            "sweeps": list(self.sweeps), "store": self.store,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneResult:
        finder = data.get("finder")
        return cls(
            lr=data["lr"], metric=data["metric"], schedule=data["schedule"],
            epochs=data["epochs"], candidates=[Candidate(**c) for c in data["candidates"]],
            interval=(data["interval"][0], data["interval"][1]), cost=data["cost"],
            wall_s=data["wall_s"], executor=data["executor"], caveats=list(data["caveats"]),
            finder=None if finder is None else FinderResult.from_dict(finder),
            sweeps=list(data["sweeps"]), store=data["store"],
        )  # fmt: skip

    def save(self, path: str | Path) -> Path:
        """Write everything but the model as JSON."""
        out = Path(path)
        out.write_text(json.dumps(self.to_dict(), indent=1))
        return out

    @classmethod
    def load(cls, path: str | Path) -> TuneResult:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, path: str | Path | None = None) -> Figure:
        """Two panels: the range test's curve with the candidate LRs marked, and the metric
        against LR (seed mean, band from min to max over seeds; pruned and diverged
        candidates as crosses at their last metric) with the chosen LR. Saved to ``path``
        when given; never shown."""
        from lrkit._plot import require_matplotlib, save

        require_matplotlib()
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 4.2), layout="constrained")
        left, right = fig.subplots(1, 2)
        if self.finder is not None:
            self.finder.plot(ax=left)
        else:
            left.set_xscale("log")
            left.set_title("no range test")
        for c in self.candidates:
            left.axvline(c.lr, color="tab:green" if c.lr == self.lr else "0.6", lw=0.8, ls=":")
        lrs, means, lows, highs = [], [], [], []
        for lr, runs in self.by_lr().items():
            done = [c.metric for c in runs if c.completed and c.metric is not None]
            if len(done) == len(runs):
                lrs.append(lr)
                means.append(sum(done) / len(done))
                lows.append(min(done))
                highs.append(max(done))
            for c in runs:
                if not c.completed and c.metric is not None and math.isfinite(c.metric):
                    right.plot(c.lr, c.metric, "x", color="tab:red")
        right.plot(lrs, means, "o-", label=f"{self.metric} (seed mean)")
        right.fill_between(lrs, lows, highs, alpha=0.25)
        if self.lr is not None:
            right.axvline(self.lr, color="tab:green", label=f"chosen {self.lr:.3g}")
        right.set_xscale("log")
        right.set_xlabel("learning rate")
        right.set_ylabel(self.metric)
        right.set_title(f"{self.schedule}, {self.epochs} epochs (x: stopped early)")
        right.legend()
        save(fig, path)
        return fig
