"""The closed-form shapes: each value computed from the step alone, nothing recursive to drift."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import ClassVar

from lrkit.schedules._base import (
    Schedule,
    choice,
    fail,
    floor_below_top,
    integer,
    integers,
    interpolate,
    non_negative,
    number,
    positive,
    renamed,
    store,
)


@dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """``lr`` at every step: ``lr(t) = lr``.

    >>> s = constant(0.1)
    >>> s(0), s(1000)
    (0.1, 0.1)
    """

    name: ClassVar[str] = "constant"
    lr: float

    def __post_init__(self) -> None:
        store(self, lr=non_negative("lr", self.lr))

    def lr_at(self, t: int) -> float:
        return float(self.lr)

    def bounds(self) -> tuple[float, float]:
        return (self.lr, self.lr)


@renamed(start="start_lr", end="end_lr", steps="total_steps")
@dataclass(frozen=True, repr=False)
class Linear(Schedule):
    """From ``start_lr`` to ``end_lr`` in a straight line over ``total_steps``, then ``end_lr``.

    ``lr(t) = start_lr + (end_lr - start_lr) * min(t, total_steps) / total_steps``; it may
    rise or fall.

    >>> s = linear(start_lr=1.0, end_lr=0.0, total_steps=4)
    >>> [s(t) for t in range(6)]
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """

    name: ClassVar[str] = "linear"
    start_lr: float
    end_lr: float
    total_steps: int

    def __post_init__(self) -> None:
        store(
            self,
            start_lr=non_negative("start_lr", self.start_lr),
            end_lr=non_negative("end_lr", self.end_lr),
            total_steps=integer("total_steps", self.total_steps),
        )

    def lr_at(self, t: int) -> float:
        span = self.end_lr - self.start_lr
        return self.start_lr + span * min(t, self.total_steps) / self.total_steps

    def bounds(self) -> tuple[float, float]:
        return (min(self.start_lr, self.end_lr), max(self.start_lr, self.end_lr))


@renamed(lr="start_lr", every="interval_steps")
@dataclass(frozen=True, repr=False)
class Exponential(Schedule):
    """``start_lr * gamma ** (t / interval_steps)``; with ``staircase`` the exponent is floored.

    ``interval_steps=1`` is PyTorch's ExponentialLR; ``interval_steps=k, staircase=True`` is
    Keras' ExponentialDecay with ``decay_steps=k``.

    >>> s = exponential(start_lr=1.0, gamma=0.5, interval_steps=10, staircase=True)
    >>> s(9), s(10), s(25)
    (1.0, 0.5, 0.25)
    """

    name: ClassVar[str] = "exponential"
    start_lr: float
    gamma: float
    interval_steps: int = 1
    staircase: bool = False

    def __post_init__(self) -> None:
        store(
            self,
            start_lr=positive("start_lr", self.start_lr),
            gamma=positive("gamma", self.gamma),
            interval_steps=integer("interval_steps", self.interval_steps),
        )

    def lr_at(self, t: int) -> float:
        exponent = t // self.interval_steps if self.staircase else t / self.interval_steps
        return float(self.start_lr * self.gamma**exponent)

    def bounds(self) -> tuple[float, float]:
        return (0.0, self.start_lr) if self.gamma <= 1 else (self.start_lr, math.inf)


@renamed(lr="start_lr", step_size="interval_steps")
@dataclass(frozen=True, repr=False)
class Step(Schedule):
    """``start_lr * gamma ** (t // interval_steps)`` (PyTorch's StepLR, its ``step_size``).

    >>> s = step(start_lr=0.1, gamma=0.5, interval_steps=30)
    >>> s(29), s(30), s(60)
    (0.1, 0.05, 0.025)
    """

    name: ClassVar[str] = "step"
    start_lr: float
    gamma: float
    interval_steps: int

    def __post_init__(self) -> None:
        store(
            self,
            start_lr=positive("start_lr", self.start_lr),
            gamma=positive("gamma", self.gamma),
            interval_steps=integer("interval_steps", self.interval_steps),
        )

    def lr_at(self, t: int) -> float:
        return float(self.start_lr * self.gamma ** (t // self.interval_steps))

    def bounds(self) -> tuple[float, float]:
        return (0.0, self.start_lr) if self.gamma <= 1 else (self.start_lr, math.inf)


@renamed(lr="start_lr")
@dataclass(frozen=True, repr=False)
class MultiStep(Schedule):
    """``start_lr * gamma ** (number of milestones <= t)`` (PyTorch's MultiStepLR).

    >>> s = multistep(start_lr=1.0, gamma=0.1, milestones=[2, 4])
    >>> [s(t) for t in range(5)]
    [1.0, 1.0, 0.1, 0.1, 0.010000000000000002]
    """

    name: ClassVar[str] = "multistep"
    start_lr: float
    gamma: float
    milestones: tuple[int, ...]

    def __post_init__(self) -> None:
        rule = "a non-empty list of integers >= 1"
        milestones = integers("milestones", self.milestones, 1, rule)
        if not milestones:
            fail("milestones", self.milestones, rule)
        store(
            self,
            start_lr=positive("start_lr", self.start_lr),
            gamma=positive("gamma", self.gamma),
            milestones=milestones,
        )

    def lr_at(self, t: int) -> float:
        return float(self.start_lr * self.gamma ** bisect.bisect_right(self.milestones, t))

    def bounds(self) -> tuple[float, float]:
        low = self.start_lr * self.gamma ** len(self.milestones)
        return (min(low, self.start_lr), max(low, self.start_lr))


@dataclass(frozen=True, repr=False)
class PiecewiseConstant(Schedule):
    """``values[i]`` for ``boundaries[i-1] < t <= boundaries[i]`` (Keras' PiecewiseConstantDecay).

    >>> s = piecewise_constant(boundaries=[100, 200], values=[1.0, 0.5, 0.1])
    >>> s(100), s(101), s(201)
    (1.0, 0.5, 0.1)
    """

    name: ClassVar[str] = "piecewise_constant"
    boundaries: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        boundaries = integers("boundaries", self.boundaries, 0, "integers >= 0")
        values = tuple(self.values)
        if len(values) != len(boundaries) + 1:
            fail(
                "values",
                self.values,
                f"one longer than boundaries ({len(boundaries) + 1} values for "
                f"{len(boundaries)} boundaries)",
            )
        store(
            self,
            boundaries=boundaries,
            values=tuple(non_negative("values", v) for v in values),
        )

    def lr_at(self, t: int) -> float:
        return float(self.values[bisect.bisect_left(self.boundaries, t)])

    def bounds(self) -> tuple[float, float]:
        return (min(self.values), max(self.values))


@renamed(lr="max_lr", end_lr="min_lr", steps="total_steps")
@dataclass(frozen=True, repr=False)
class Polynomial(Schedule):
    """``(max_lr - min_lr) * (1 - t/total_steps) ** power + min_lr`` (Keras' PolynomialDecay).

    Without ``cycle`` the step is capped at ``total_steps``; with it the horizon grows to the
    next multiple of ``total_steps`` (``total_steps * ceil(t/total_steps)``, at least
    ``total_steps``), as in Keras. ``min_lr=0`` is PyTorch's PolynomialLR.

    >>> s = polynomial(max_lr=1.0, min_lr=0.0, total_steps=4, power=2.0)
    >>> [s(t) for t in range(6)]
    [1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]
    >>> s = polynomial(max_lr=1.0, min_lr=0.0, total_steps=4, power=2.0, cycle=True)
    >>> [round(s(t), 4) for t in (4, 5, 6)]  # from t=5 the horizon is 8
    [0.0, 0.1406, 0.0625]
    """

    name: ClassVar[str] = "polynomial"
    max_lr: float
    min_lr: float
    total_steps: int
    power: float = 1.0
    cycle: bool = False

    def __post_init__(self) -> None:
        store(
            self,
            max_lr=positive("max_lr", self.max_lr),
            min_lr=non_negative("min_lr", self.min_lr),
            total_steps=integer("total_steps", self.total_steps),
            power=positive("power", self.power),
        )
        floor_below_top(self.min_lr, self.max_lr)

    def lr_at(self, t: int) -> float:
        horizon = self.total_steps
        if self.cycle:
            horizon = self.total_steps * max(math.ceil(t / self.total_steps), 1)
        else:
            t = min(t, self.total_steps)
        span = self.max_lr - self.min_lr
        return float(span * (1 - t / horizon) ** self.power + self.min_lr)

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)


@renamed(lr="max_lr", steps="total_steps")
@dataclass(frozen=True, repr=False)
class Cosine(Schedule):
    """Half a cosine from ``max_lr`` to ``min_lr`` over ``total_steps``, then ``min_lr``.

    ``lr(t) = min_lr + (max_lr - min_lr) * (1 + cos(pi * min(t, T) / T)) / 2`` with
    ``T = total_steps`` — the closed form of PyTorch's CosineAnnealingLR (whose recursive
    update drifts), held at the end instead of rising again.

    >>> s = cosine(max_lr=1.0, total_steps=100, min_lr=0.1)
    >>> s(0), round(s(50), 6), s(100), s(200)
    (1.0, 0.55, 0.1, 0.1)
    """

    name: ClassVar[str] = "cosine"
    max_lr: float
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        store(
            self,
            max_lr=positive("max_lr", self.max_lr),
            total_steps=integer("total_steps", self.total_steps),
            min_lr=non_negative("min_lr", self.min_lr),
        )
        floor_below_top(self.min_lr, self.max_lr)

    def lr_at(self, t: int) -> float:
        pct = min(t, self.total_steps) / self.total_steps
        return interpolate(self.max_lr, self.min_lr, pct, "cos")

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)


@renamed(lr="max_lr")
@dataclass(frozen=True, repr=False)
class InverseSqrt(Schedule):
    """Linear warmup from 0 to ``max_lr`` over ``warmup_steps``, then ``max_lr * sqrt(w / t)``.

    The Transformer schedule (Vaswani et al., 2017), as fairseq and Hugging Face use it. With
    ``timescale`` the decay is ``max_lr / sqrt((t - warmup_steps + timescale) / timescale)``
    (Hugging Face's and big_vision's ``timescale``; it may be used with ``warmup_steps=0``);
    without it ``timescale = warmup_steps``.

    >>> s = inverse_sqrt(max_lr=1.0, warmup_steps=100)
    >>> s(50), s(100), s(400)
    (0.5, 1.0, 0.5)
    >>> inverse_sqrt(max_lr=1.0, warmup_steps=0, timescale=100)(300)
    0.5
    """

    name: ClassVar[str] = "inverse_sqrt"
    max_lr: float
    warmup_steps: int
    timescale: int | None = None

    def __post_init__(self) -> None:
        store(
            self,
            max_lr=positive("max_lr", self.max_lr),
            warmup_steps=integer("warmup_steps", self.warmup_steps, 0),
        )
        if self.timescale is not None:
            store(self, timescale=integer("timescale", self.timescale))
        elif self.warmup_steps == 0:
            fail("warmup_steps", 0, "an integer >= 1 without a timescale", "or pass timescale=")

    def lr_at(self, t: int) -> float:
        if t < self.warmup_steps:
            return self.max_lr * t / self.warmup_steps
        if self.timescale is None:
            return self.max_lr * math.sqrt(self.warmup_steps / t)
        return self.max_lr / math.sqrt((t - self.warmup_steps + self.timescale) / self.timescale)

    def bounds(self) -> tuple[float, float]:
        return (0.0, self.max_lr)

    def warmup_length(self) -> int:
        return self.warmup_steps


@dataclass(frozen=True, repr=False)
class Anneal(Schedule):
    """From ``start_lr`` at ``start_step`` to ``end_lr`` at ``end_step``; flat outside.

    ``pct = clamp((t - start_step) / (end_step - start_step), 0, 1)``, then
    ``end_lr + (start_lr - end_lr) * (1 + cos(pi * pct)) / 2`` (``shape="cosine"``) or
    ``start_lr + (end_lr - start_lr) * pct`` (``"linear"``). The knots may fall between
    steps, as the phase ends of PyTorch's OneCycleLR do: :class:`OneCycle` is a
    :func:`join` of these, and so is its momentum schedule.

    >>> s = anneal(start_lr=1.0, end_lr=0.0, end_step=3.0, start_step=-1.0, shape="linear")
    >>> [s(t) for t in range(5)]
    [0.75, 0.5, 0.25, 0.0, 0.0]
    """

    name: ClassVar[str] = "anneal"
    start_lr: float
    end_lr: float
    end_step: float
    start_step: float = 0.0
    shape: str = "cosine"

    def __post_init__(self) -> None:
        store(
            self,
            start_lr=non_negative("start_lr", self.start_lr),
            end_lr=non_negative("end_lr", self.end_lr),
            start_step=number("start_step", self.start_step),
            end_step=number("end_step", self.end_step),
        )
        if not (math.isfinite(self.start_step) and math.isfinite(self.end_step)):
            fail("end_step", (self.start_step, self.end_step), "finite, as start_step")
        if not self.end_step > self.start_step:
            fail("end_step", self.end_step, f"> start_step ({self.start_step})")
        choice("shape", self.shape, ("cosine", "linear"))

    def lr_at(self, t: int) -> float:
        pct = (t - self.start_step) / (self.end_step - self.start_step)
        pct = min(max(pct, 0.0), 1.0)
        return interpolate(self.start_lr, self.end_lr, pct, self.shape)

    def bounds(self) -> tuple[float, float]:
        return (min(self.start_lr, self.end_lr), max(self.start_lr, self.end_lr))


# The public constructors: lower-case, as users write them in code and in specs.
constant = Constant
linear = Linear
exponential = Exponential
step = Step
multistep = MultiStep
piecewise_constant = PiecewiseConstant
polynomial = Polynomial
cosine = Cosine
inverse_sqrt = InverseSqrt
anneal = Anneal
