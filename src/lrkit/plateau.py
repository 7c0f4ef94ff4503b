"""Reduce the LR when a metric stops improving: PyTorch's ReduceLROnPlateau as a controller.

Unlike the schedules, this depends on what training measures, so it is a small state
machine: feed it the metric (once per epoch, typically the validation loss) and the current
LRs, and it returns the LRs to use next. :func:`lrkit.to_torch` composes it with any schedule
(``plateau=``), so a warmup runs first and plateau control takes over after it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ReduceOnPlateau"]


@dataclass
class ReduceOnPlateau:
    """Multiply the LR by ``factor`` after ``patience`` reports without improvement.

    A report improves on the best so far when (``mode="min"``) it is below
    ``best * (1 - threshold)`` (``threshold_mode="rel"``) or ``best - threshold`` (``"abs"``);
    ``mode="max"`` mirrors it. After a reduction, ``cooldown`` reports are ignored. LRs never
    go below ``min_lr``, and changes smaller than ``eps`` are skipped. These are the rules
    and defaults of PyTorch's ReduceLROnPlateau, and the tests hold the two to the same
    LRs on the same metric sequence.

    >>> p = ReduceOnPlateau(factor=0.5, patience=1)
    >>> [p.update(m, [1.0])[0] for m in (3.0, 2.0, 2.0, 2.0)]
    [1.0, 1.0, 1.0, 0.5]
    """

    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float = 0.0
    eps: float = 1e-8
    best: float = field(default=math.nan, repr=False)
    bad_reports: int = field(default=0, repr=False)
    cooldown_left: int = field(default=0, repr=False)
    reports: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max' (got {self.mode!r})")
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs' (got {self.threshold_mode!r})")
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1) (got {self.factor!r}); 0.1 is usual")
        if (
            isinstance(self.patience, bool)
            or not isinstance(self.patience, int)
            or self.patience < 0
        ):
            raise ValueError(f"patience must be an integer >= 0 (got {self.patience!r})")
        if (
            isinstance(self.cooldown, bool)
            or not isinstance(self.cooldown, int)
            or self.cooldown < 0
        ):
            raise ValueError(f"cooldown must be an integer >= 0 (got {self.cooldown!r})")
        if self.threshold < 0:
            raise ValueError(f"threshold must be >= 0 (got {self.threshold!r})")
        if self.min_lr < 0:
            raise ValueError(f"min_lr must be >= 0 (got {self.min_lr!r})")
        if math.isnan(self.best):
            self.best = math.inf if self.mode == "min" else -math.inf

    def improves(self, metric: float) -> bool:
        """Whether ``metric`` beats the best so far by more than the threshold."""
        if self.mode == "min":
            bar = (
                self.best * (1 - self.threshold)
                if self.threshold_mode == "rel"
                else self.best - self.threshold
            )
            return metric < bar
        bar = (
            self.best * (1 + self.threshold)
            if self.threshold_mode == "rel"
            else self.best + self.threshold
        )
        return metric > bar

    def update(self, metric: float, lrs: list[float]) -> list[float]:
        """Take one report; return the LRs to use from now on (``lrs`` or reduced ones)."""
        metric = float(metric)
        self.reports += 1
        if self.improves(metric):
            self.best, self.bad_reports = metric, 0
        else:
            self.bad_reports += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_reports = 0
        if self.bad_reports <= self.patience:
            return list(lrs)
        self.cooldown_left, self.bad_reports = self.cooldown, 0
        reduced = []
        for lr in lrs:
            new = max(lr * self.factor, self.min_lr)
            reduced.append(new if lr - new > self.eps else lr)
        return reduced

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
