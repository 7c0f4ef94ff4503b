"""The combinators: new schedules made of others (warmup before one, one after another, scaled)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import ClassVar

from lrkit.schedules._base import (
    Schedule,
    choice,
    fail,
    fraction,
    integer,
    integers,
    interpolate,
    non_negative,
    renamed,
    store,
)
from lrkit.schedules._shapes import Constant


@renamed(steps="warmup_steps")
@dataclass(frozen=True, repr=False)
class Warmup(Schedule):
    """``warmup_steps`` from ``start_factor * schedule(0)`` up to ``schedule(0)``, then it.

    The wrapped schedule starts after the warmup at its own step 0, so a cosine keeps its full
    length. ``shape``: ``"linear"`` (PyTorch's LinearLR), ``"exponential"`` (the factor grows
    geometrically) or ``"cosine"``. ``start_factor=0`` starts from 0, as Hugging Face's
    warmups do (linear or cosine only: a geometric ramp cannot leave 0).

    >>> from lrkit.schedules import constant, warmup
    >>> s = warmup(constant(1.0), warmup_steps=4, start_factor=0.2)
    >>> [round(s(t), 6) for t in range(6)]
    [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    """

    name: ClassVar[str] = "warmup"
    schedule: Schedule
    warmup_steps: int
    start_factor: float = 0.1
    shape: str = "linear"

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            fail("schedule", self.schedule, "a Schedule")
        store(
            self,
            warmup_steps=integer("warmup_steps", self.warmup_steps),
            start_factor=fraction(
                "start_factor", self.start_factor, "in [0, 1]", 0, 1, "0.1 warms up from LR/10"
            )
            if self.start_factor != 0
            else non_negative("start_factor", self.start_factor),
        )
        choice("shape", self.shape, ("linear", "exponential", "cosine"))
        if self.start_factor == 0 and self.shape == "exponential":
            fail(
                "start_factor",
                self.start_factor,
                "> 0 with shape='exponential'",
                "a geometric ramp cannot leave 0: use shape='linear' or a start_factor > 0",
            )

    def factor(self, t: int) -> float:
        pct = min(t / self.warmup_steps, 1.0)
        if self.shape == "exponential":
            return float(self.start_factor ** (1.0 - pct))
        shape = "linear" if self.shape == "linear" else "cos"
        return interpolate(self.start_factor, 1.0, pct, shape)

    def lr_at(self, t: int) -> float:
        if t < self.warmup_steps:
            return self.factor(t) * self.schedule.lr_at(0)
        return self.schedule.lr_at(t - self.warmup_steps)

    def bounds(self) -> tuple[float, float]:
        lo, hi = self.schedule.bounds()
        return (min(lo, self.start_factor * self.schedule.lr_at(0)), hi)

    def momentum_schedule(self) -> Schedule | None:
        inner = self.schedule.momentum_schedule()
        if inner is None:
            return None
        return Join((Constant(inner.lr_at(0)), inner), (self.warmup_steps,))

    def warmup_length(self) -> int:
        return self.warmup_steps + self.schedule.warmup_length()


@dataclass(frozen=True, repr=False)
class Join(Schedule):
    """``schedules[i]`` from ``boundaries[i-1]`` on, each seeing its own local step (optax's join).

    >>> from lrkit.schedules import constant, join, linear
    >>> s = join([constant(1.0), linear(1.0, 0.0, total_steps=10)], boundaries=[5])
    >>> s(4), s(5), s(10)
    (1.0, 1.0, 0.5)
    """

    name: ClassVar[str] = "join"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        schedules = tuple(self.schedules)
        if not schedules or not all(isinstance(s, Schedule) for s in schedules):
            fail("schedules", self.schedules, "a non-empty list of Schedules")
        boundaries = integers("boundaries", self.boundaries, 1, "integers >= 1")
        if len(boundaries) != len(schedules) - 1:
            fail(
                "boundaries",
                self.boundaries,
                f"one shorter than schedules ({len(schedules) - 1} for {len(schedules)} schedules)",
            )
        store(self, schedules=schedules, boundaries=boundaries)

    def _piece(self, t: int) -> tuple[Schedule, int]:
        i = bisect.bisect_right(self.boundaries, t)
        return self.schedules[i], t - (self.boundaries[i - 1] if i else 0)

    def lr_at(self, t: int) -> float:
        sched, local = self._piece(t)
        return sched.lr_at(local)

    def bounds(self) -> tuple[float, float]:
        pieces = [s.bounds() for s in self.schedules]
        return (min(p[0] for p in pieces), max(p[1] for p in pieces))

    def momentum_schedule(self) -> Schedule | None:
        inner = [s.momentum_schedule() for s in self.schedules]
        if any(m is None for m in inner):  # a piece without one: leave momentum alone
            return None
        return Join(tuple(m for m in inner if m is not None), self.boundaries)


@dataclass(frozen=True, repr=False)
class Scale(Schedule):
    """``factor * schedule(t)``.

    >>> from lrkit.schedules import constant, scale
    >>> scale(constant(0.2), factor=3)(7)
    0.6000000000000001
    """

    name: ClassVar[str] = "scale"
    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            fail("schedule", self.schedule, "a Schedule")
        store(self, factor=non_negative("factor", self.factor))

    def lr_at(self, t: int) -> float:
        return self.factor * self.schedule.lr_at(t)

    def bounds(self) -> tuple[float, float]:
        lo, hi = self.schedule.bounds()
        return (self.factor * lo, self.factor * hi)

    def momentum_schedule(self) -> Schedule | None:
        return self.schedule.momentum_schedule()

    def warmup_length(self) -> int:
        return self.schedule.warmup_length()


@dataclass(frozen=True, repr=False)
class Shift(Schedule):
    """``schedule(t + steps)``: the schedule started ``steps`` steps in.

    A :func:`join` gives each piece its own local step; ``shift`` lets a piece see the global
    one instead, as in a warmup that overlaps the start of the schedule after it (timm's
    ``warmup_prefix=False``).

    >>> from lrkit.schedules import join, linear, shift
    >>> s = join([linear(0.0, 1.0, total_steps=2), shift(linear(1.0, 0.0, 4), steps=2)], [2])
    >>> [s(t) for t in range(5)]
    [0.0, 0.5, 0.5, 0.25, 0.0]
    """

    name: ClassVar[str] = "shift"
    schedule: Schedule
    steps: int

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            fail("schedule", self.schedule, "a Schedule")
        store(self, steps=integer("steps", self.steps, 0))

    def lr_at(self, t: int) -> float:
        return self.schedule.lr_at(t + self.steps)

    def bounds(self) -> tuple[float, float]:
        return self.schedule.bounds()

    def momentum_schedule(self) -> Schedule | None:
        inner = self.schedule.momentum_schedule()
        return None if inner is None else Shift(inner, self.steps)

    def warmup_length(self) -> int:
        return max(self.schedule.warmup_length() - self.steps, 0)


warmup = Warmup
join = Join
scale = Scale
shift = Shift
