"""Schedules of phases and cycles: one-cycle, cyclic, SGDR's warm restarts, warmup-stable-decay."""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

from lrkit.schedules._base import (
    Schedule,
    choice,
    fail,
    floor_below_top,
    fraction,
    integer,
    interpolate,
    non_negative,
    number,
    positive,
    renamed,
    store,
)
from lrkit.schedules._combinators import Join
from lrkit.schedules._shapes import Anneal


def _momentum_range(min_momentum: object, max_momentum: object) -> tuple[float, float]:
    low = number("min_momentum", min_momentum)
    high = number("max_momentum", max_momentum)
    if not 0 <= low <= high < 1:
        fail(
            "min_momentum",
            min_momentum,
            f"in [0, max_momentum={max_momentum}] with max_momentum < 1",
        )
    return low, high


@renamed(base_momentum="min_momentum")
@dataclass(frozen=True, repr=False)
class OneCycle(Schedule):
    """Smith's one-cycle policy with PyTorch's OneCycleLR numbers.

    From ``start_lr = max_lr/div_factor`` up to ``max_lr`` over ``pct_start`` of the steps,
    then down to ``min_lr = start_lr/final_div_factor``; ``anneal`` is ``"cos"`` or
    ``"linear"``: a phase from ``a`` to ``b`` at fraction ``p`` of it is
    ``b + (a - b) * (1 + cos(pi * p)) / 2`` or ``a + (b - a) * p``. ``three_phase`` comes
    back down to the start before the final anneal. The momentum schedule moves the other
    way, between ``max_momentum`` and ``min_momentum``.
    Both are a :func:`join` of :func:`anneal` phases, built with the schedule
    (``lr_phases``, ``momentum_phases``: derived, not parameters, so not in its spec).
    (Smith & Topin, "Super-Convergence", 2018.)

    >>> from lrkit.schedules import one_cycle
    >>> s = one_cycle(max_lr=1.0, total_steps=10, pct_start=0.5, anneal="linear")
    >>> [round(s(t), 4) for t in (0, 2, 4, 6, 9)]
    [0.04, 0.52, 1.0, 0.6, 0.0]
    >>> [round(s.momentum_schedule()(t), 4) for t in (0, 2, 4, 6, 9)]
    [0.95, 0.9, 0.85, 0.89, 0.95]
    """

    name: ClassVar[str] = "one_cycle"
    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False
    min_momentum: float = 0.85
    max_momentum: float = 0.95
    lr_phases: Join = field(init=False, repr=False, compare=False)
    momentum_phases: Join = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        store(
            self,
            max_lr=positive("max_lr", self.max_lr),
            total_steps=integer("total_steps", self.total_steps, 2),
            pct_start=fraction("pct_start", self.pct_start, "in (0, 1)", 0, 1, "0.3 is usual"),
            div_factor=positive("div_factor", self.div_factor),
            final_div_factor=positive("final_div_factor", self.final_div_factor),
        )
        if self.pct_start == 1:
            fail("pct_start", self.pct_start, "in (0, 1)", "0.3 is usual")
        choice("anneal", self.anneal, ("cos", "linear"))
        low, high = _momentum_range(self.min_momentum, self.max_momentum)
        store(self, min_momentum=low, max_momentum=high)
        up = self.pct_start * self.total_steps - 1
        if up <= 0 or (self.three_phase and 2 * up >= self.total_steps - 1):
            fail(
                "pct_start",
                self.pct_start,
                f"large enough for a warm-up of at least 1 step of {self.total_steps}"
                + (" and below 0.5 with three_phase" if self.three_phase else ""),
            )
        # Derived once here, as part of construction; the instance never changes after.
        store(
            self,
            lr_phases=self._phases(self.start_lr, self.max_lr, self.min_lr),
            # Inverse to the LR: down while it rises, back up while it falls (and stays up).
            momentum_phases=self._phases(self.max_momentum, self.min_momentum, self.max_momentum),
        )

    @property
    def start_lr(self) -> float:
        """The value at step 0: ``max_lr / div_factor``."""
        return self.max_lr / self.div_factor

    @property
    def min_lr(self) -> float:
        """The value at the last step: ``start_lr / final_div_factor``."""
        return self.start_lr / self.final_div_factor

    @property
    def initial_lr(self) -> float:
        """Deprecated: :attr:`start_lr` (0.1's name; goes in 0.3)."""
        warnings.warn(
            "OneCycle.initial_lr is deprecated: use start_lr", DeprecationWarning, stacklevel=2
        )
        return self.start_lr

    def _phases(self, start: float, peak: float, end: float) -> Join:
        """PyTorch's phases: ``start`` -> ``peak`` at step ``pct_start*total_steps - 1`` ->
        ``end`` at the last step (via ``start`` at twice the first knot with ``three_phase``).

        OneCycleLR puts the knots between steps; each phase becomes the :class:`Anneal` of
        the steps after the previous knot, with the knots shifted to its local step, so every
        value is the same floating-point number PyTorch computes.
        """
        up = float(self.pct_start * self.total_steps) - 1
        knots = [(0.0, start), (up, peak)]
        if self.three_phase:
            knots.append((2 * up, start))
        knots.append((float(self.total_steps - 1), end))
        shape = "cosine" if self.anneal == "cos" else "linear"
        pieces: list[Schedule] = []
        boundaries: list[int] = []
        for i, ((a, from_value), (b, to_value)) in enumerate(itertools.pairwise(knots)):
            first = 0 if i == 0 else math.floor(a) + 1  # the first step after the knot
            if i < len(knots) - 2 and first > b:
                continue  # no step falls in this phase (a very short three-phase cycle)
            pieces.append(Anneal(from_value, to_value, end_step=b - first, start_step=a - first,
                                 shape=shape))  # fmt: skip
            if i:
                boundaries.append(first)
        return Join(tuple(pieces), tuple(boundaries))

    def momentum_schedule(self) -> Join:
        return self.momentum_phases

    def lr_at(self, t: int) -> float:
        return self.lr_phases.lr_at(t)

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)

    def warmup_length(self) -> int:
        return max(int(self.pct_start * self.total_steps) - 1, 0)


@renamed(
    base_lr="min_lr",
    step_size_up="up_steps",
    step_size_down="down_steps",
    base_momentum="min_momentum",
)
@dataclass(frozen=True, repr=False)
class Cyclic(Schedule):
    """Smith's cyclical learning rates, the numbers of PyTorch's CyclicLR.

    A triangle from ``min_lr`` up to ``max_lr`` in ``up_steps`` and back down in
    ``down_steps`` (default: ``up_steps``). ``mode``: ``"triangular"`` (constant amplitude),
    ``"triangular2"`` (amplitude halves every cycle), ``"exp_range"`` (amplitude times
    ``gamma ** t``). ``inverted`` mirrors the triangle: it starts at ``max_lr`` and dips to
    ``min_lr`` while the plain one rises; the momentum schedule is the inverted cyclic
    between ``min_momentum`` and ``max_momentum``. (Smith, "Cyclical Learning Rates", 2017.)

    ``lr(t) = min_lr + (max_lr - min_lr) * h(t) * amp(t)``, where ``h`` rises linearly from
    0 to 1 over ``up_steps`` and falls back over ``down_steps``, and ``amp`` is 1,
    ``0.5 ** cycle`` (``triangular2``) or ``gamma ** t`` (``exp_range``).

    >>> from lrkit.schedules import cyclic
    >>> s = cyclic(min_lr=0.0, max_lr=1.0, up_steps=2, mode="triangular2")
    >>> [s(t) for t in range(9)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.25, 0.5, 0.25, 0.0]
    >>> [round(s.momentum_schedule()(t), 4) for t in range(3)]
    [0.9, 0.85, 0.8]
    """

    name: ClassVar[str] = "cyclic"
    min_lr: float
    max_lr: float
    up_steps: int = 2000
    down_steps: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    min_momentum: float = 0.8
    max_momentum: float = 0.9
    inverted: bool = False

    def __post_init__(self) -> None:
        store(
            self,
            min_lr=non_negative("min_lr", self.min_lr),
            max_lr=non_negative("max_lr", self.max_lr),
            up_steps=integer("up_steps", self.up_steps),
            gamma=fraction("gamma", self.gamma, "in (0, 1]", 0, 1),
        )
        if self.max_lr < self.min_lr:
            fail("max_lr", self.max_lr, f">= min_lr ({self.min_lr})", "swap them")
        if self.down_steps is not None:
            store(self, down_steps=integer("down_steps", self.down_steps))
        choice("mode", self.mode, ("triangular", "triangular2", "exp_range"))
        low, high = _momentum_range(self.min_momentum, self.max_momentum)
        store(self, min_momentum=low, max_momentum=high)
        if not isinstance(self.inverted, bool):
            fail("inverted", self.inverted, "True or False")

    def _position(self, t: int) -> tuple[float, float]:
        """(height in the current triangle in [0, 1], amplitude scale of this cycle)."""
        up = float(self.up_steps)
        down = float(self.down_steps) if self.down_steps is not None else up
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
        start, far = (self.max_lr, self.min_lr) if self.inverted else (self.min_lr, self.max_lr)
        # (far - start) is exactly -(start - far): the inverted form gives PyTorch's
        # momentum ``max - (max - base) * height * amplitude`` bit for bit.
        return start + (far - start) * height * amplitude

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)

    def momentum_schedule(self) -> Cyclic:
        return Cyclic(
            min_lr=self.min_momentum,
            max_lr=self.max_momentum,
            up_steps=self.up_steps,
            down_steps=self.down_steps,
            mode=self.mode,
            gamma=self.gamma,
            inverted=not self.inverted,
        )


@renamed(t_0="cycle_steps", t_mult="cycle_mult", decay="cycle_decay")
@dataclass(frozen=True, repr=False)
class SGDR(Schedule):
    """Cosine annealing with warm restarts (Loshchilov & Hutter, "SGDR", 2017).

    Cycle ``i`` lasts ``cycle_steps * cycle_mult**i`` steps; within it the LR falls by half a
    cosine from its peak to ``min_lr``,
    ``lr = min_lr + (peak_i - min_lr) * (1 + cos(pi * t_cur / length_i)) / 2``, with ``t_cur``
    the steps into the cycle. The peak of cycle ``i`` is
    ``min_lr + (max_lr - min_lr) * cycle_decay**i`` (``decay_mode="span"``, Keras' ``m_mul``)
    or ``max_lr * cycle_decay**i`` (``"peak"``, timm's ``cycle_decay``). ``cycle_decay=1`` is
    PyTorch's CosineAnnealingWarmRestarts (``T_0``, ``T_mult``). ``k_decay`` bends the cosine:
    its phase is ``(t_cur / length) ** k_decay`` (Zhang et al., "k-decay", 2020). After
    ``cycle_limit`` cycles, if given, the LR stays at ``min_lr``.

    >>> from lrkit.schedules import sgdr
    >>> s = sgdr(max_lr=1.0, cycle_steps=10, cycle_mult=2, cycle_decay=0.5)
    >>> [s(t) for t in (0, 5, 10, 20, 30)]
    [1.0, 0.5, 0.5, 0.25, 0.25]
    >>> sgdr(max_lr=1.0, cycle_steps=10, cycle_limit=1)(15)
    0.0
    """

    name: ClassVar[str] = "sgdr"
    max_lr: float
    cycle_steps: int
    cycle_mult: float = 1
    min_lr: float = 0.0
    cycle_decay: float = 1.0
    decay_mode: str = "span"
    k_decay: float = 1.0
    cycle_limit: int | None = None

    def __post_init__(self) -> None:
        store(
            self,
            max_lr=positive("max_lr", self.max_lr),
            cycle_steps=integer("cycle_steps", self.cycle_steps),
            cycle_mult=number("cycle_mult", self.cycle_mult, "a number >= 1"),
            min_lr=non_negative("min_lr", self.min_lr),
            cycle_decay=fraction("cycle_decay", self.cycle_decay, "in (0, 1]", 0, 1),
            k_decay=positive("k_decay", self.k_decay),
        )
        if not (math.isfinite(self.cycle_mult) and self.cycle_mult >= 1):
            fail(
                "cycle_mult",
                self.cycle_mult,
                "a number >= 1",
                "1 keeps every cycle as long as cycle_steps",
            )
        floor_below_top(self.min_lr, self.max_lr)
        choice("decay_mode", self.decay_mode, ("span", "peak"))
        if self.cycle_limit is not None:
            store(self, cycle_limit=integer("cycle_limit", self.cycle_limit))

    def cycle_at(self, t: int) -> tuple[int, float, float]:
        """(cycle index, steps into the cycle, cycle length) at step ``t``."""
        if self.cycle_mult == 1:
            i = t // self.cycle_steps
            return i, float(t - i * self.cycle_steps), float(self.cycle_steps)
        m = self.cycle_mult
        i = int(math.log(t / self.cycle_steps * (m - 1) + 1, m))

        def start(k: int) -> float:
            return self.cycle_steps * (m**k - 1) / (m - 1)

        while start(i + 1) <= t:  # the log can land one cycle off at exact boundaries
            i += 1
        while i > 0 and start(i) > t:
            i -= 1
        return i, t - start(i), self.cycle_steps * m**i

    def lr_at(self, t: int) -> float:
        i, t_cur, length = self.cycle_at(t)
        if self.cycle_limit is not None and i >= self.cycle_limit:
            return float(self.min_lr)
        if self.decay_mode == "span":
            peak = self.min_lr + (self.max_lr - self.min_lr) * self.cycle_decay**i
        else:
            peak = self.max_lr * self.cycle_decay**i
        pct = t_cur / length if self.k_decay == 1 else t_cur**self.k_decay / length**self.k_decay
        return interpolate(peak, self.min_lr, pct, "cos")

    def bounds(self) -> tuple[float, float]:
        if self.decay_mode == "peak" and self.cycle_decay < 1:
            return (0.0, self.max_lr)  # peaks may fall below min_lr, towards 0
        return (self.min_lr, self.max_lr)


@dataclass(frozen=True, repr=False)
class WSD(Schedule):
    """Warmup-stable-decay: the trapezoid of modern LLM training (Hu et al., MiniCPM, 2024).

    Warmup from ``min_lr`` to ``max_lr`` over ``warmup_steps``; ``max_lr`` until the
    last ``decay_frac`` of ``total_steps``; then down to ``min_lr`` with ``decay_shape``
    ``"linear"`` (``1-p``), ``"cosine"`` (``(1+cos(pi p))/2``) or ``"sqrt"`` (``1-sqrt(p)``),
    where ``p`` is the fraction of the decay done. ``warmup_shape`` mirrors them on the way
    up: ``"linear"`` (``p``), ``"cosine"`` (``(1-cos(pi p))/2``), ``"sqrt"``
    (``1-sqrt(1-p)``). These are Hugging Face's ``warmup_type``/``decay_type`` (``"1-sqrt"``
    is ``"sqrt"`` here).

    >>> s = wsd(max_lr=1.0, total_steps=100, warmup_steps=10, decay_frac=0.2)
    >>> s(5), s(50), s(90), s(100)
    (0.5, 1.0, 0.5, 0.0)
    """

    name: ClassVar[str] = "wsd"
    max_lr: float
    total_steps: int
    warmup_steps: int = 0
    decay_frac: float = 0.2
    decay_shape: str = "linear"
    min_lr: float = 0.0
    warmup_shape: str = "linear"

    def __post_init__(self) -> None:
        store(
            self,
            max_lr=positive("max_lr", self.max_lr),
            total_steps=integer("total_steps", self.total_steps),
            warmup_steps=integer("warmup_steps", self.warmup_steps, 0),
            decay_frac=fraction(
                "decay_frac", self.decay_frac, "in (0, 1]", 0, 1, "0.1-0.2 is usual"
            ),
            min_lr=non_negative("min_lr", self.min_lr),
        )
        choice("decay_shape", self.decay_shape, ("linear", "cosine", "sqrt"))
        choice("warmup_shape", self.warmup_shape, ("linear", "cosine", "sqrt"))
        floor_below_top(self.min_lr, self.max_lr)
        if self.warmup_steps > self.decay_start:
            fail(
                "warmup_steps",
                self.warmup_steps,
                f"<= the start of the decay ({self.decay_start})",
                "shorten the warmup or decay_frac",
            )

    @property
    def decay_steps(self) -> int:
        """Steps of the final decay."""
        return max(round(self.decay_frac * self.total_steps), 1)

    @property
    def decay_start(self) -> int:
        """The step the decay starts at."""
        return self.total_steps - self.decay_steps

    def lr_at(self, t: int) -> float:
        span = self.max_lr - self.min_lr
        if t < self.warmup_steps:
            if self.warmup_shape == "linear":
                return self.min_lr + span * t / self.warmup_steps
            p = t / self.warmup_steps
            up = (
                (1 - math.cos(math.pi * p)) / 2
                if self.warmup_shape == "cosine"
                else 1 - math.sqrt(1 - p)
            )
            return self.min_lr + span * up
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


one_cycle = OneCycle
cyclic = Cyclic
sgdr = SGDR
wsd = WSD
