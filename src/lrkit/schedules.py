"""Learning-rate schedules as pure, immutable functions ``step -> lr``, and their combinators.

Every schedule is a frozen dataclass you call with a step number (``0, 1, 2, …``); the value
is computed in closed form, so there is no state to drift or to save: resuming is just calling
with the step you are at. Schedules print as their spec and round-trip through it:

>>> from lrkit import schedules as S
>>> s = S.warmup(S.cosine(lr=0.1, steps=100, min_lr=0.001), steps=10)
>>> s
warmup(schedule=cosine(lr=0.1, steps=100, min_lr=0.001), steps=10)
>>> [round(s(t), 4) for t in (0, 5, 10, 60, 110)]
[0.01, 0.055, 0.1, 0.0505, 0.001]
>>> S.parse(s.to_spec()) == s
True

Drive a torch optimizer with :func:`lrkit.to_torch`; plot with :func:`lrkit.plot_schedule`.
"""

from __future__ import annotations

import ast
import bisect
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "Schedule",
    "constant",
    "cosine",
    "cyclic",
    "exponential",
    "for_run",
    "inverse_sqrt",
    "join",
    "linear",
    "multistep",
    "names",
    "one_cycle",
    "parse",
    "piecewise_constant",
    "polynomial",
    "scale",
    "sgdr",
    "step",
    "warmup",
    "wsd",
]

_REGISTRY: dict[str, type[Schedule]] = {}


def _fail(name: str, value: object, rule: str, fix: str = "") -> None:
    raise ValueError(f"{name} must be {rule} (got {value!r}){'; ' + fix if fix else ''}")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        _fail(name, value, "a finite number > 0")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        _fail(name, value, "a finite number >= 0")


def _steps(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, value, f"an integer >= {minimum}")


def _choice(name: str, value: str, options: Sequence[str]) -> None:
    if value not in options:
        _fail(name, value, f"one of {', '.join(repr(o) for o in options)}")


def _anneal(start: float, end: float, pct: float, shape: str) -> float:
    """From ``start`` (pct 0) to ``end`` (pct 1): a straight line or half a cosine."""
    if shape == "linear":
        return start + (end - start) * pct
    return end + (start - end) * (1.0 + math.cos(math.pi * pct)) / 2.0


@dataclass(frozen=True, repr=False)
class Schedule:
    """Base of all schedules: call it with a step, get the learning rate.

    Subclasses set ``name`` (their spec name), implement ``lr_at`` and state their bounds.
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            _REGISTRY[cls.name] = cls

    def __call__(self, step: int) -> float:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer >= 0 (got {step!r})")
        return self.lr_at(step)

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value the schedule can take."""
        raise NotImplementedError

    def momentum_schedule(self) -> Schedule | None:
        """The momentum (or Adam beta1) schedule that goes with this one, if it has one."""
        return None

    def warmup_length(self) -> int:
        """Steps of warmup at the start (performance-based control waits for them)."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., param: value, ...}`` with nested schedules as dicts; JSON-ready."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            out[f.name] = _to_plain(getattr(self, f.name))
        return out

    def to_spec(self) -> str:
        """The spec string that :func:`parse` turns back into an equal schedule.

        Parameters left at their defaults are omitted.
        """
        args = ", ".join(
            f"{f.name}={_spec_value(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
            if f.default is dataclasses.MISSING or getattr(self, f.name) != f.default
        )
        return f"{self.name}({args})"

    def __repr__(self) -> str:
        return self.to_spec()


def _to_plain(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _spec_value(value: Any) -> str:
    if isinstance(value, Schedule):
        return value.to_spec()
    if isinstance(value, tuple):
        return "[" + ", ".join(_spec_value(v) for v in value) + "]"
    return repr(value)


# ----------------------------------------------------------------------------- basic shapes


@dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """``lr`` at every step."""

    name: ClassVar[str] = "constant"
    lr: float

    def __post_init__(self) -> None:
        _non_negative("lr", self.lr)

    def lr_at(self, t: int) -> float:
        return float(self.lr)

    def bounds(self) -> tuple[float, float]:
        return (self.lr, self.lr)


@dataclass(frozen=True, repr=False)
class Linear(Schedule):
    """From ``start`` to ``end`` in a straight line over ``steps``, then ``end``.

    ``lr(t) = start + (end - start) * min(t, steps) / steps``
    """

    name: ClassVar[str] = "linear"
    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        _non_negative("start", self.start)
        _non_negative("end", self.end)
        _steps("steps", self.steps)

    def lr_at(self, t: int) -> float:
        return self.start + (self.end - self.start) * min(t, self.steps) / self.steps

    def bounds(self) -> tuple[float, float]:
        return (min(self.start, self.end), max(self.start, self.end))


@dataclass(frozen=True, repr=False)
class Exponential(Schedule):
    """``lr * gamma ** (t / every)``; with ``staircase`` the exponent is floored.

    ``every=1`` is PyTorch's ExponentialLR; ``every=k, staircase=True`` is Keras'
    ExponentialDecay with ``decay_steps=k``.
    """

    name: ClassVar[str] = "exponential"
    lr: float
    gamma: float
    every: int = 1
    staircase: bool = False

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _positive("gamma", self.gamma)
        _steps("every", self.every)

    def lr_at(self, t: int) -> float:
        exponent = t // self.every if self.staircase else t / self.every
        return float(self.lr * self.gamma**exponent)

    def bounds(self) -> tuple[float, float]:
        return (0.0, self.lr) if self.gamma <= 1 else (self.lr, math.inf)


@dataclass(frozen=True, repr=False)
class Step(Schedule):
    """``lr * gamma ** (t // step_size)`` (PyTorch's StepLR)."""

    name: ClassVar[str] = "step"
    lr: float
    gamma: float
    step_size: int

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _positive("gamma", self.gamma)
        _steps("step_size", self.step_size)

    def lr_at(self, t: int) -> float:
        return float(self.lr * self.gamma ** (t // self.step_size))

    def bounds(self) -> tuple[float, float]:
        return (0.0, self.lr) if self.gamma <= 1 else (self.lr, math.inf)


@dataclass(frozen=True, repr=False)
class MultiStep(Schedule):
    """``lr * gamma ** (number of milestones <= t)`` (PyTorch's MultiStepLR)."""

    name: ClassVar[str] = "multistep"
    lr: float
    gamma: float
    milestones: tuple[int, ...]

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _positive("gamma", self.gamma)
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if not self.milestones or any(
            isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.milestones
        ):
            _fail("milestones", self.milestones, "a non-empty list of integers >= 1")
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            _fail("milestones", self.milestones, "strictly increasing", "sort them")

    def lr_at(self, t: int) -> float:
        return float(self.lr * self.gamma ** bisect.bisect_right(self.milestones, t))

    def bounds(self) -> tuple[float, float]:
        low = self.lr * self.gamma ** len(self.milestones)
        return (min(low, self.lr), max(low, self.lr))


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
        object.__setattr__(self, "boundaries", tuple(self.boundaries))
        object.__setattr__(self, "values", tuple(self.values))
        if any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in self.boundaries):
            _fail("boundaries", self.boundaries, "integers >= 0")
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)):
            _fail("boundaries", self.boundaries, "strictly increasing", "sort them")
        if len(self.values) != len(self.boundaries) + 1:
            _fail(
                "values",
                self.values,
                f"one longer than boundaries ({len(self.boundaries) + 1} values for "
                f"{len(self.boundaries)} boundaries)",
            )
        for v in self.values:
            _non_negative("values", v)

    def lr_at(self, t: int) -> float:
        return float(self.values[bisect.bisect_left(self.boundaries, t)])

    def bounds(self) -> tuple[float, float]:
        return (min(self.values), max(self.values))


@dataclass(frozen=True, repr=False)
class Polynomial(Schedule):
    """``(lr - end_lr) * (1 - t/steps) ** power + end_lr`` (Keras' PolynomialDecay).

    Without ``cycle`` the step is capped at ``steps``; with it the horizon grows to the next
    multiple of ``steps`` (``steps * ceil(t/steps)``, at least ``steps``), as in Keras.
    ``end_lr=0`` is PyTorch's PolynomialLR.
    """

    name: ClassVar[str] = "polynomial"
    lr: float
    end_lr: float
    steps: int
    power: float = 1.0
    cycle: bool = False

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _non_negative("end_lr", self.end_lr)
        _steps("steps", self.steps)
        _positive("power", self.power)

    def lr_at(self, t: int) -> float:
        horizon = self.steps
        if self.cycle:
            horizon = self.steps * max(math.ceil(t / self.steps), 1)
        else:
            t = min(t, self.steps)
        return float((self.lr - self.end_lr) * (1 - t / horizon) ** self.power + self.end_lr)

    def bounds(self) -> tuple[float, float]:
        return (min(self.lr, self.end_lr), max(self.lr, self.end_lr))


@dataclass(frozen=True, repr=False)
class Cosine(Schedule):
    """Half a cosine from ``lr`` to ``min_lr`` over ``steps``, then ``min_lr``.

    ``lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi * min(t, steps) / steps)) / 2`` — the
    closed form of PyTorch's CosineAnnealingLR (whose recursive update drifts), held at the
    end instead of rising again.
    """

    name: ClassVar[str] = "cosine"
    lr: float
    steps: int
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _steps("steps", self.steps)
        _non_negative("min_lr", self.min_lr)
        if self.min_lr > self.lr:
            _fail("min_lr", self.min_lr, f"<= lr ({self.lr})")

    def lr_at(self, t: int) -> float:
        return _anneal(self.lr, self.min_lr, min(t, self.steps) / self.steps, "cos")

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.lr)


@dataclass(frozen=True, repr=False)
class InverseSqrt(Schedule):
    """Linear warmup from 0 to ``lr`` over ``warmup_steps``, then ``lr * sqrt(warmup_steps / t)``.

    The Transformer schedule (Vaswani et al., 2017), as fairseq and Hugging Face use it.
    """

    name: ClassVar[str] = "inverse_sqrt"
    lr: float
    warmup_steps: int

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _steps("warmup_steps", self.warmup_steps)

    def lr_at(self, t: int) -> float:
        if t < self.warmup_steps:
            return self.lr * t / self.warmup_steps
        return self.lr * math.sqrt(self.warmup_steps / t)

    def bounds(self) -> tuple[float, float]:
        return (0.0, self.lr)

    def warmup_length(self) -> int:
        return self.warmup_steps


# ----------------------------------------------------------------------------- cycles


@dataclass(frozen=True, repr=False)
class _Phased(Schedule):
    """Piecewise anneals between (end step, value) knots; shared by one-cycle's two curves."""

    name: ClassVar[str] = ""
    knots: tuple[tuple[float, float], ...]
    start_value: float
    anneal: str

    def lr_at(self, t: int) -> float:
        start_step, start_value = 0.0, self.start_value
        for i, (end_step, end_value) in enumerate(self.knots):
            if t <= end_step or i == len(self.knots) - 1:
                pct = min((t - start_step) / (end_step - start_step), 1.0)
                return _anneal(start_value, end_value, pct, self.anneal)
            start_step, start_value = end_step, end_value
        raise AssertionError("unreachable")  # pragma: no cover

    def bounds(self) -> tuple[float, float]:
        values = [self.start_value] + [v for _, v in self.knots]
        return (min(values), max(values))


@dataclass(frozen=True, repr=False)
class OneCycle(Schedule):
    """Smith's one-cycle policy with PyTorch's OneCycleLR numbers.

    From ``max_lr/div_factor`` up to ``max_lr`` over ``pct_start`` of the steps, then down
    to ``max_lr/div_factor/final_div_factor``; ``anneal`` is ``"cos"`` or ``"linear"``.
    ``three_phase`` comes back down to the start before the final anneal. The momentum
    schedule moves the other way, between ``max_momentum`` and ``base_momentum``.
    (Smith & Topin, "Super-Convergence", 2018.)
    """

    name: ClassVar[str] = "one_cycle"
    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False
    base_momentum: float = 0.85
    max_momentum: float = 0.95

    def __post_init__(self) -> None:
        _positive("max_lr", self.max_lr)
        _steps("total_steps", self.total_steps, 2)
        if not (isinstance(self.pct_start, (int, float)) and 0 < self.pct_start < 1):
            _fail("pct_start", self.pct_start, "in (0, 1)", "0.3 is usual")
        _choice("anneal", self.anneal, ("cos", "linear"))
        _positive("div_factor", self.div_factor)
        _positive("final_div_factor", self.final_div_factor)
        if not 0 <= self.base_momentum <= self.max_momentum < 1:
            _fail(
                "base_momentum",
                self.base_momentum,
                f"in [0, max_momentum={self.max_momentum}] with max_momentum < 1",
            )
        up = self.pct_start * self.total_steps - 1
        if up <= 0 or (self.three_phase and 2 * up >= self.total_steps - 1):
            _fail(
                "pct_start",
                self.pct_start,
                f"large enough for a warm-up of at least 1 step of {self.total_steps}"
                + (" and below 0.5 with three_phase" if self.three_phase else ""),
            )

    def _curve(self, start: float, peak: float, end: float) -> _Phased:
        up = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        knots: tuple[tuple[float, float], ...] = ((up, peak), (last, end))
        if self.three_phase:
            knots = ((up, peak), (2 * up, start), (last, end))
        return _Phased(knots=knots, start_value=start, anneal=self.anneal)

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def min_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    def lr_at(self, t: int) -> float:
        curve = self.__dict__.get("_lr_curve")
        if curve is None:  # built once; not a field, so equality and specs ignore it
            curve = self._curve(self.initial_lr, self.max_lr, self.min_lr)
            object.__setattr__(self, "_lr_curve", curve)
        return curve.lr_at(t)

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)

    def warmup_length(self) -> int:
        return max(int(self.pct_start * self.total_steps) - 1, 0)

    def momentum_schedule(self) -> Schedule:
        # Inverse to the LR: down while it rises, back up while it falls (and stays up).
        return self._curve(self.max_momentum, self.base_momentum, self.max_momentum)


@dataclass(frozen=True, repr=False)
class Cyclic(Schedule):
    """Smith's cyclical learning rates, the numbers of PyTorch's CyclicLR.

    A triangle from ``base_lr`` up to ``max_lr`` in ``step_size_up`` steps and back down in
    ``step_size_down`` (default: the same). ``mode``: ``"triangular"`` (constant amplitude),
    ``"triangular2"`` (amplitude halves every cycle), ``"exp_range"`` (amplitude times
    ``gamma ** t``). The momentum schedule mirrors the LR between ``max_momentum`` and
    ``base_momentum``. (Smith, "Cyclical Learning Rates", 2017.)
    """

    name: ClassVar[str] = "cyclic"
    base_lr: float
    max_lr: float
    step_size_up: int = 2000
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    base_momentum: float = 0.8
    max_momentum: float = 0.9

    def __post_init__(self) -> None:
        _non_negative("base_lr", self.base_lr)
        _positive("max_lr", self.max_lr)
        if self.max_lr < self.base_lr:
            _fail("max_lr", self.max_lr, f">= base_lr ({self.base_lr})", "swap them")
        _steps("step_size_up", self.step_size_up)
        if self.step_size_down is not None:
            _steps("step_size_down", self.step_size_down)
        _choice("mode", self.mode, ("triangular", "triangular2", "exp_range"))
        if not (isinstance(self.gamma, (int, float)) and 0 < self.gamma <= 1):
            _fail("gamma", self.gamma, "in (0, 1]")
        if not 0 <= self.base_momentum <= self.max_momentum < 1:
            _fail(
                "base_momentum",
                self.base_momentum,
                f"in [0, max_momentum={self.max_momentum}] with max_momentum < 1",
            )

    def _position(self, t: int) -> tuple[float, float]:
        """(height in the current triangle in [0, 1], amplitude scale of this cycle)."""
        up = float(self.step_size_up)
        down = float(self.step_size_down) if self.step_size_down is not None else up
        total = up + down
        ratio = up / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        height = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        if self.mode == "triangular":
            amplitude = 1.0
        elif self.mode == "triangular2":
            amplitude = math.ldexp(1.0, -(cycle - 1))  # 1/2**(cycle-1), 0 past 2**-1074
        else:
            amplitude = self.gamma**t
        return height, amplitude

    def lr_at(self, t: int) -> float:
        height, amplitude = self._position(t)
        return self.base_lr + (self.max_lr - self.base_lr) * height * amplitude

    def bounds(self) -> tuple[float, float]:
        return (self.base_lr, self.max_lr)

    def momentum_schedule(self) -> Schedule:
        return _CyclicMomentum(self)


@dataclass(frozen=True, repr=False)
class _CyclicMomentum(Schedule):
    name: ClassVar[str] = ""
    lr: Cyclic

    def lr_at(self, t: int) -> float:
        height, amplitude = self.lr._position(t)
        top, bottom = self.lr.max_momentum, self.lr.base_momentum
        return top - (top - bottom) * height * amplitude

    def bounds(self) -> tuple[float, float]:
        return (self.lr.base_momentum, self.lr.max_momentum)


@dataclass(frozen=True, repr=False)
class SGDR(Schedule):
    """Cosine annealing with warm restarts (Loshchilov & Hutter, "SGDR", 2017).

    Cycle ``i`` lasts ``t_0 * t_mult**i`` steps; within it the LR falls by half a cosine from
    ``min_lr + (max_lr - min_lr) * decay**i`` to ``min_lr``. ``decay=1`` is PyTorch's
    CosineAnnealingWarmRestarts; ``decay<1`` shrinks each peak as Keras' ``m_mul`` does.
    """

    name: ClassVar[str] = "sgdr"
    max_lr: float
    t_0: int
    t_mult: float = 1
    min_lr: float = 0.0
    decay: float = 1.0

    def __post_init__(self) -> None:
        _positive("max_lr", self.max_lr)
        _steps("t_0", self.t_0)
        if not (isinstance(self.t_mult, (int, float)) and self.t_mult >= 1):
            _fail("t_mult", self.t_mult, "a number >= 1", "1 keeps every cycle as long as t_0")
        _non_negative("min_lr", self.min_lr)
        if self.min_lr > self.max_lr:
            _fail("min_lr", self.min_lr, f"<= max_lr ({self.max_lr})")
        if not (isinstance(self.decay, (int, float)) and 0 < self.decay <= 1):
            _fail("decay", self.decay, "in (0, 1]")

    def cycle_at(self, t: int) -> tuple[int, float, float]:
        """(cycle index, steps into the cycle, cycle length) at step ``t``."""
        if self.t_mult == 1:
            i = t // self.t_0
            return i, float(t - i * self.t_0), float(self.t_0)
        m = self.t_mult
        i = int(math.log(t / self.t_0 * (m - 1) + 1, m))

        def start(k: int) -> float:
            return self.t_0 * (m**k - 1) / (m - 1)

        while start(i + 1) <= t:  # the log can land one cycle off at exact boundaries
            i += 1
        while i > 0 and start(i) > t:
            i -= 1
        return i, t - start(i), self.t_0 * m**i

    def lr_at(self, t: int) -> float:
        i, t_cur, length = self.cycle_at(t)
        peak = self.min_lr + (self.max_lr - self.min_lr) * self.decay**i
        return _anneal(peak, self.min_lr, t_cur / length, "cos")

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)


@dataclass(frozen=True, repr=False)
class WSD(Schedule):
    """Warmup-stable-decay: the trapezoid of modern LLM training (Hu et al., MiniCPM, 2024).

    Linear warmup from ``min_lr`` to ``max_lr`` over ``warmup_steps``; ``max_lr`` until the
    last ``decay_frac`` of ``total_steps``; then down to ``min_lr`` with ``decay_shape``
    ``"linear"`` (``1-p``), ``"cosine"`` (``(1+cos(pi p))/2``) or ``"sqrt"`` (``1-sqrt(p)``),
    where ``p`` is the fraction of the decay done.
    """

    name: ClassVar[str] = "wsd"
    max_lr: float
    total_steps: int
    warmup_steps: int = 0
    decay_frac: float = 0.2
    decay_shape: str = "linear"
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _positive("max_lr", self.max_lr)
        _steps("total_steps", self.total_steps)
        _steps("warmup_steps", self.warmup_steps, 0)
        if not (isinstance(self.decay_frac, (int, float)) and 0 < self.decay_frac <= 1):
            _fail("decay_frac", self.decay_frac, "in (0, 1]", "0.1-0.2 is usual")
        _choice("decay_shape", self.decay_shape, ("linear", "cosine", "sqrt"))
        _non_negative("min_lr", self.min_lr)
        if self.min_lr > self.max_lr:
            _fail("min_lr", self.min_lr, f"<= max_lr ({self.max_lr})")
        if self.warmup_steps > self.decay_start:
            _fail(
                "warmup_steps",
                self.warmup_steps,
                f"<= the start of the decay ({self.decay_start})",
                "shorten the warmup or decay_frac",
            )

    @property
    def decay_steps(self) -> int:
        return max(round(self.decay_frac * self.total_steps), 1)

    @property
    def decay_start(self) -> int:
        return self.total_steps - self.decay_steps

    def lr_at(self, t: int) -> float:
        span = self.max_lr - self.min_lr
        if t < self.warmup_steps:
            return self.min_lr + span * t / self.warmup_steps
        if t < self.decay_start:
            return float(self.max_lr)
        p = min((t - self.decay_start) / self.decay_steps, 1.0)
        if self.decay_shape == "linear":
            f = 1 - p
        elif self.decay_shape == "cosine":
            f = (1 + math.cos(math.pi * p)) / 2
        else:
            f = 1 - math.sqrt(p)
        return self.min_lr + span * f

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)

    def warmup_length(self) -> int:
        return self.warmup_steps


# ----------------------------------------------------------------------------- combinators


@dataclass(frozen=True, repr=False)
class Warmup(Schedule):
    """``steps`` of warmup from ``start_factor * schedule(0)`` up to ``schedule(0)``, then it.

    The wrapped schedule starts after the warmup at its own step 0, so a cosine keeps its full
    length. ``shape``: ``"linear"`` (PyTorch's LinearLR), ``"exponential"`` (the factor grows
    geometrically) or ``"cosine"``.
    """

    name: ClassVar[str] = "warmup"
    schedule: Schedule
    steps: int
    start_factor: float = 0.1
    shape: str = "linear"

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            _fail("schedule", self.schedule, "a Schedule")
        _steps("steps", self.steps)
        if not (isinstance(self.start_factor, (int, float)) and 0 < self.start_factor <= 1):
            _fail("start_factor", self.start_factor, "in (0, 1]", "0.1 warms up from LR/10")
        _choice("shape", self.shape, ("linear", "exponential", "cosine"))

    def factor(self, t: int) -> float:
        pct = min(t / self.steps, 1.0)
        if self.shape == "exponential":
            return float(self.start_factor ** (1.0 - pct))
        return _anneal(self.start_factor, 1.0, pct, "linear" if self.shape == "linear" else "cos")

    def lr_at(self, t: int) -> float:
        if t < self.steps:
            return self.factor(t) * self.schedule.lr_at(0)
        return self.schedule.lr_at(t - self.steps)

    def bounds(self) -> tuple[float, float]:
        lo, hi = self.schedule.bounds()
        return (min(lo, self.start_factor * self.schedule.lr_at(0)), hi)

    def momentum_schedule(self) -> Schedule | None:
        inner = self.schedule.momentum_schedule()
        return None if inner is None else Join((Constant(inner.lr_at(0)), inner), (self.steps,))

    def warmup_length(self) -> int:
        return self.steps + self.schedule.warmup_length()


@dataclass(frozen=True, repr=False)
class Join(Schedule):
    """``schedules[i]`` from ``boundaries[i-1]`` on, each seeing its own local step (optax's join).

    >>> s = join([constant(1.0), linear(1.0, 0.0, steps=10)], boundaries=[5])
    >>> s(4), s(5), s(10)
    (1.0, 1.0, 0.5)
    """

    name: ClassVar[str] = "join"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", tuple(self.schedules))
        object.__setattr__(self, "boundaries", tuple(self.boundaries))
        if not self.schedules or not all(isinstance(s, Schedule) for s in self.schedules):
            _fail("schedules", self.schedules, "a non-empty list of Schedules")
        if len(self.boundaries) != len(self.schedules) - 1:
            _fail(
                "boundaries",
                self.boundaries,
                f"one shorter than schedules ({len(self.schedules) - 1} for "
                f"{len(self.schedules)} schedules)",
            )
        if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.boundaries):
            _fail("boundaries", self.boundaries, "integers >= 1")
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)):
            _fail("boundaries", self.boundaries, "strictly increasing", "sort them")

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
    """``factor * schedule(t)``."""

    name: ClassVar[str] = "scale"
    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            _fail("schedule", self.schedule, "a Schedule")
        _non_negative("factor", self.factor)

    def lr_at(self, t: int) -> float:
        return self.factor * self.schedule.lr_at(t)

    def bounds(self) -> tuple[float, float]:
        lo, hi = self.schedule.bounds()
        return (self.factor * lo, self.factor * hi)

    def momentum_schedule(self) -> Schedule | None:
        return self.schedule.momentum_schedule()

    def warmup_length(self) -> int:
        return self.schedule.warmup_length()


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
one_cycle = OneCycle
cyclic = Cyclic
sgdr = SGDR
wsd = WSD
warmup = Warmup
join = Join
scale = Scale


def for_run(spec: str, lr: float, total_steps: int) -> Schedule:
    """A schedule from a bare name filled with ``lr`` and ``total_steps``, or a full spec.

    Bare names: constant, cosine, linear (to 0), one_cycle (``lr`` is its max), wsd (5%
    warmup), warmup_cosine (5% linear warmup from lr/10, then cosine to 0).
    """
    name = spec.strip()
    warm = max(total_steps // 20, 1)
    if name == "constant":
        return Constant(lr)
    if name == "cosine":
        return Cosine(lr=lr, steps=total_steps)
    if name == "linear":
        return Linear(lr, 0.0, steps=total_steps)
    if name == "one_cycle":
        return OneCycle(max_lr=lr, total_steps=total_steps)
    if name == "wsd":
        return WSD(max_lr=lr, total_steps=total_steps, warmup_steps=warm)
    if name == "warmup_cosine":
        return Warmup(Cosine(lr=lr, steps=max(total_steps - warm, 1)), steps=warm)
    return parse(name)


def names() -> list[str]:
    """Every schedule name a spec may use."""
    return sorted(_REGISTRY)


# ----------------------------------------------------------------------------- specs


def _build(name: str, kwargs: dict[str, Any]) -> Schedule:
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(names())}")
    params = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(
            f"{name}() has no parameter {', '.join(map(repr, unknown))}; valid: {', '.join(params)}"
        )
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(
            f"{name}() is missing {', '.join(missing)}; parameters: {', '.join(params)}"
        )
    return cls(**kwargs)


def _from_node(node: ast.expr, spec: str) -> Any:
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise ValueError(f"bad schedule spec {spec!r}: call schedules by plain name")
        cls = _REGISTRY.get(node.func.id)
        if cls is None:
            raise ValueError(f"unknown schedule {node.func.id!r}; valid: {', '.join(names())}")
        params = [f.name for f in dataclasses.fields(cls)]
        if len(node.args) > len(params):
            raise ValueError(f"{node.func.id}() takes at most {len(params)} arguments")
        kwargs = {p: _from_node(a, spec) for p, a in zip(params, node.args, strict=False)}
        for kw in node.keywords:
            if kw.arg is None:
                raise ValueError(f"bad schedule spec {spec!r}: ** is not allowed")
            if kw.arg in kwargs:
                raise ValueError(f"{node.func.id}() got {kw.arg!r} twice")
            kwargs[kw.arg] = _from_node(kw.value, spec)
        return _build(node.func.id, kwargs)
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(_from_node(e, spec) for e in node.elts)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(
            f"bad schedule spec {spec!r}: only schedule calls, numbers, strings, booleans "
            f"and lists are allowed (at {ast.unparse(node)!r})"
        ) from None


def _from_mapping(data: Mapping[str, Any]) -> Schedule:
    data = dict(data)
    name = data.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"a schedule dict needs a 'name' (one of: {', '.join(names())})")
    kwargs = {k: _plain_to_value(v) for k, v in data.items()}
    return _build(name, kwargs)


def _plain_to_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _from_mapping(value)
    if isinstance(value, list):
        return tuple(_plain_to_value(v) for v in value)
    return value


def parse(spec: str | Mapping[str, Any] | Schedule) -> Schedule:
    """A schedule from a spec string, a dict (as :meth:`Schedule.to_dict` writes), or itself.

    Strings are parsed as Python expressions but never evaluated: only calls of schedule
    names with literal arguments (numbers, strings, booleans, lists, nested schedules).

    >>> round(parse("warmup(one_cycle(max_lr=3e-3, total_steps=1000), steps=100)")(400), 6)
    0.003
    """
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, Mapping):
        return _from_mapping(spec)
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string, a dict or a Schedule (got {type(spec).__name__})")
    try:
        tree = ast.parse(spec.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"bad schedule spec {spec!r}: {exc.msg}") from None
    if isinstance(tree.body, ast.Name):  # a bare name: say what it needs
        name = tree.body.id
        if name in _REGISTRY:
            params = ", ".join(f.name for f in dataclasses.fields(_REGISTRY[name]))
            raise ValueError(f"{name} needs its parameters: {name}({params})")
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(names())}")
    result = _from_node(tree.body, spec)
    if not isinstance(result, Schedule):
        raise ValueError(f"bad schedule spec {spec!r}: expected a schedule call like cosine(...)")
    return result
