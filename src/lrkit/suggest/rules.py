"""The suggestion rules: pure functions of a range-test curve ``(lrs, losses) -> Suggestion``.

See :mod:`lrkit.suggest` for the contract every rule follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "METHODS",
    "RAW_INPUT",
    "Ema",
    "Rule",
    "Suggestion",
    "auto",
    "minimum",
    "raw_input",
    "reads_raw",
    "steepest",
    "valley",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Suggestion:
    """What a rule proposes: ``lr`` (``None`` when it declines), the curve ``index``, a ``note``."""

    lr: float | None
    index: int | None
    note: str


RawRule = TypeVar("RawRule", bound=Callable[..., Suggestion])


def raw_input(rule: RawRule) -> RawRule:
    """Mark ``rule`` as one that reads the *raw* losses and smooths them itself.

    The finder hands a rule its EMA-smoothed train loss unless the rule is marked, as
    :func:`auto` is; with a ``val_loader`` every rule reads the validation loss as measured,
    which has no batch noise to smooth.

    >>> @raw_input
    ... def lowest(lrs, losses):
    ...     i = int(np.argmin(losses))
    ...     return Suggestion(float(lrs[i]), i, "lowest raw loss")
    >>> reads_raw(lowest)
    True
    """
    rule.raw_input = True  # type: ignore[attr-defined]
    return rule


def reads_raw(rule: Callable[..., Suggestion]) -> bool:
    """Whether ``rule`` reads the raw losses (marked with :func:`raw_input`)."""
    return bool(getattr(rule, "raw_input", False))


def _curve(
    lrs: Sequence[float] | FloatArray, losses: Sequence[float] | FloatArray
) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(lrs, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"lrs and losses must be 1-D and of equal length (got shapes {x.shape} and {y.shape})"
        )
    if x.size and (np.any(x <= 0) or np.any(np.diff(x) <= 0)):
        raise ValueError("lrs must be positive and strictly increasing")
    keep = np.isfinite(y)
    return x[keep], y[keep]


Rule = Callable[[FloatArray, FloatArray], Suggestion]
"""``rule(lrs, losses) -> Suggestion``: what ``find_lr(method=...)`` accepts besides a name."""


def _declined(note: str) -> Suggestion:
    return Suggestion(None, None, note)


def steepest(lrs: Sequence[float] | FloatArray, losses: Sequence[float] | FloatArray) -> Suggestion:
    """The LR where the loss falls fastest per decade, left of the loss minimum.

    Slope is ``d loss / d log10(lr)`` (central differences). Taking the slope against the raw
    LR instead, as Lightning does, weights the tiny-LR end of an exponential sweep by up to
    ``end_lr/start_lr`` and drifts the answer towards LRs that barely train. Only points up to
    the minimum count: past it the loss rises, and Smith (2017, §3.3) places the LR on the
    falling side. The first 10% of points are skipped: the EMA's bias correction makes them
    the noisiest.
    """
    x, y = _curve(lrs, losses)
    if x.size < 3:
        return _declined("too few points (need at least 3)")
    end = int(np.argmin(y)) + 1
    if end < 3:
        return _declined("no clear valley: the loss was lowest at the start and never fell")
    slope = np.gradient(y[:end], np.log10(x[:end]))
    skip = min(x.size // 10, end - 1)  # the EMA's warm-up points, as Lightning skips them
    i = skip + int(np.argmin(slope[skip:]))
    if slope[i] >= 0:
        return _declined("no clear valley: the loss never fell")
    return Suggestion(float(x[i]), i, f"steepest descent, {slope[i]:.3g} loss per decade")


def minimum(lrs: Sequence[float] | FloatArray, losses: Sequence[float] | FloatArray) -> Suggestion:
    """The LR of the lowest loss divided by 10 (fastai's ``minimum`` rule).

    At the minimum the loss has stopped improving and is about to diverge; a tenth of it is
    the classic safe choice.
    """
    x, y = _curve(lrs, losses)
    if x.size == 0:
        return _declined("empty curve")
    i = int(np.argmin(y))
    return Suggestion(float(x[i] / 10.0), i, f"lowest loss {y[i]:.4g} at lr={x[i]:.3g}, ÷10")


def _longest_decreasing(y: FloatArray) -> tuple[int, int]:
    """First and last index of the longest strictly decreasing subsequence of ``y``.

    A subsequence, not a contiguous run: a single noisy uptick inside a long descent does not
    cut the valley in two. O(n²), which is nothing for a few hundred points.
    """
    n = y.size
    length = np.ones(n, dtype=np.int64)
    first = np.arange(n)
    for i in range(1, n):
        earlier = np.flatnonzero(y[:i] > y[i])
        if earlier.size:
            # Among equally long predecessors take the latest, so that a flat stretch before
            # the descent does not count as part of it.
            best = length[earlier]
            j = earlier[np.flatnonzero(best == best.max())[-1]]
            length[i] = length[j] + 1
            first[i] = first[j]
    last = int(np.argmax(length))
    return int(first[last]), last


def valley(lrs: Sequence[float] | FloatArray, losses: Sequence[float] | FloatArray) -> Suggestion:
    """The middle of the longest descent of the loss (after fastai's ``valley``).

    The valley is the span of the longest strictly decreasing subsequence of the loss. Its
    middle (by index, so the geometric middle of an exponential sweep) is far enough from the
    flat start to train quickly and far enough from the bottom to stay stable.
    """
    x, y = _curve(lrs, losses)
    if x.size < 3:
        return _declined("too few points (need at least 3)")
    start, end = _longest_decreasing(y)
    if end - start < 2:
        return _declined("no clear valley: the loss never fell for more than two points")
    i = (start + end) // 2
    return Suggestion(
        float(x[i]), i, f"middle of the longest descent, lr {x[start]:.3g}…{x[end]:.3g}"
    )


def _gaussian_weights(logx: FloatArray, width: float) -> FloatArray:
    """Row-normalised Gaussian kernel weights over ``log10(lr)`` (``width`` decades): smoothing
    on the LR axis, not on the step index, treats dense and sparse sweeps alike."""
    d = logx[:, None] - logx[None, :]
    w = np.exp(-0.5 * (d / width) ** 2)
    return np.asarray(w / w.sum(axis=1, keepdims=True), dtype=np.float64)


def _smoothing_error(y: FloatArray, smoothed: FloatArray, weights: FloatArray) -> float:
    """Standard error of one smoothed point: the batch noise (robust scale of the residuals)
    shrunk by the number of points the kernel effectively averages."""
    residual = y - smoothed
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    return noise * float(np.median(np.sqrt((weights**2).sum(axis=1))))


AUTO_WIDTH = 0.2  # decades: standard deviation of the Gaussian smoothing over log10(lr)
AUTO_MIN_DROP = 0.01  # the loss must fall by 1% of its starting value to count as a valley
AUTO_CLEAR_DROP = 0.02  # a fall of 2% or more always counts; a smaller one must also clear
AUTO_MIN_SIGNAL = 4.0  # ... 4 standard errors of a smoothed point (batch noise)
AUTO_DESCENT_START = 0.1  # the descent begins once 10% of the total drop is made
AUTO_CAP = 3.0  # the valley estimate never exceeds (LR of the lowest loss) / AUTO_CAP
AUTO_EMA = 0.98  # beta of the EMA whose minimum (÷10) is the second estimate


class Ema:
    """Exponential moving average with bias correction: ``avg_t / (1 - beta**t)``.

    Online (``update`` one value at a time), as the finder smooths while it runs.
    """

    def __init__(self, beta: float) -> None:
        self.beta, self.avg, self.t = beta, 0.0, 0

    def update(self, value: float) -> float:
        self.t += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * value
        return self.avg / (1 - self.beta**self.t)


def _ema(y: FloatArray, beta: float) -> FloatArray:
    """The finder's smoothing of a whole curve."""
    ema = Ema(beta)
    return np.array([ema.update(float(v)) for v in y], dtype=np.float64)


def _valley_estimate(x: FloatArray, y: FloatArray) -> tuple[float, int, str] | Suggestion:
    """The steep part of the valley, read off a lag-free smoothing (log10 LR, the index where
    the descent starts, note), or a declining :class:`Suggestion` when there is no valley."""
    head = max(int(np.ceil(0.05 * x.size)), 1)
    start_level = float(np.mean(y[:head]))
    logx, clipped = np.log10(x), np.minimum(y, start_level)
    weights = _gaussian_weights(logx, AUTO_WIDTH)
    smoothed = weights @ clipped
    lowest = int(np.argmin(smoothed))
    if lowest < 2:
        return _declined("no clear valley: the loss was lowest at the start and never fell")
    error = _smoothing_error(y[: lowest + 1], (weights @ y)[: lowest + 1], weights)
    logx, smoothed = logx[: lowest + 1], smoothed[: lowest + 1]
    drop = (smoothed[0] - smoothed[-1]) / max(abs(smoothed[0]), 1e-12)
    if drop < AUTO_MIN_DROP:
        return _declined(f"no clear valley: the loss fell only {100 * drop:.1f}% before rising")
    if drop < AUTO_CLEAR_DROP and smoothed[0] - smoothed[-1] < AUTO_MIN_SIGNAL * error:
        return _declined(
            f"no clear valley: the loss fell {100 * drop:.1f}%, within the batch noise "
            f"(±{error:.3g} after smoothing)"
        )
    slope = np.gradient(smoothed, logx)
    s = int(np.argmin(slope))
    # The descent starts where the loss has made 10% of its total drop: before that the
    # curve is the flat too-small-LR plateau, whatever noise wiggles it.
    fallen = (smoothed[0] - smoothed) / (smoothed[0] - smoothed[-1])
    v_start = int(np.argmax(fallen >= AUTO_DESCENT_START))
    v = (v_start + lowest) // 2
    log_lr = min(0.5 * (logx[s] + logx[v]), float(logx[lowest] - np.log10(AUTO_CAP)))
    return log_lr, v_start, f"steepest {10 ** logx[s]:.3g}, descent middle {10 ** logx[v]:.3g}"


@raw_input
def auto(lrs: Sequence[float] | FloatArray, losses: Sequence[float] | FloatArray) -> Suggestion:
    """lrkit's default rule: two independent estimates of a good LR, averaged in log space.

    It takes the *raw* losses (the finder passes them, see :data:`RAW_INPUT`).

    *Valley estimate* — the steep part of the valley on a curve smoothed without lag (the
    finder's EMA lags the loss by tens of steps and shifts every feature to higher LRs):

    1. Clip the losses at the starting level (mean of the first 5% of points): above it,
       how far above says nothing, and diverged values would drag the smoothing.
    2. Smooth with a Gaussian of 0.2 decade over ``log10(lr)``: symmetric, so no lag.
    3. Keep the points up to the smoothed minimum. Decline (``None``, with the reason)
       unless the loss fell by at least 2% of its start, or by at least 1% and by more
       than the batch noise can explain (4 standard errors of a smoothed point, from the
       residuals' robust scale): LeNet with plain SGD dips only 1.4-5% before diverging.
    4. The geometric mean of the steepest point and the middle of the descent (from 10% of
       the total drop to the minimum), capped at the lowest-loss LR / 3.

    *Minimum estimate* — the LR of the lowest EMA-smoothed (β = 0.98) loss from the start of
    the descent on, ÷ 10: the classic rule.

    ``auto`` is the geometric mean of the two. Each alone errs by up to half a decade, on
    different tasks; on the first six tasks of the suggestion-quality benchmark (4 seeds,
    constant LR and one-cycle) the mean's worst-case regret was about half of either's.
    ``docs/suggestion.md`` has that evidence and the suite's later tasks.
    """
    x, y = _curve(lrs, losses)
    if x.size < 5:
        return _declined("too few points (need at least 5)")
    valley = _valley_estimate(x, y)
    if isinstance(valley, Suggestion):
        return valley
    log_valley, start, note = valley
    # Before the descent starts the curve is flat: a lower EMA there is batch noise.
    lowest_ema = start + int(np.argmin(_ema(y, AUTO_EMA)[start:]))
    log_minimum = float(np.log10(x[lowest_ema] / 10.0))
    log_lr = 0.5 * (log_valley + log_minimum)
    index = int(np.argmin(np.abs(np.log10(x) - log_lr)))
    return Suggestion(
        float(10.0**log_lr),
        index,
        f"geometric mean of the valley ({10**log_valley:.3g}: {note}) and the EMA "
        f"minimum ÷10 ({10**log_minimum:.3g})",
    )


METHODS: dict[str, Rule] = {
    "auto": auto,
    "steepest": steepest,
    "valley": valley,
    "minimum": minimum,
}
"""Every rule by name, in the order results list them."""

RAW_INPUT = frozenset(name for name, rule in METHODS.items() if reads_raw(rule))
"""The built-in rules marked :func:`raw_input`; the others read the finder's EMA curve."""
