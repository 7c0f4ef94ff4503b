"""The suggestion rules: pure functions of a range-test curve ``(lrs, losses) -> Suggestion``.

See :mod:`lrkit.suggest` for the contract every rule follows.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AUTO_MAX_DISAGREEMENT",
    "AUTO_NOISE_HEAD",
    "METHODS",
    "RAW_INPUT",
    "Ema",
    "Rule",
    "Suggestion",
    "auto",
    "minimum",
    "raw_input",
    "reads_raw",
    "slide",
    "steep",
    "steepest",
    "takes_num_steps",
    "valley",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Suggestion:
    """What a rule proposes: ``lr`` (``None`` when it declines), the curve ``index``, a
    ``note``, and a ``caveat`` when the user should know something (what to do after a
    decline; an estimate set aside) — :attr:`lrkit.FinderResult.caveats` shows it."""

    lr: float | None
    index: int | None
    note: str
    caveat: str | None = None


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
"""``rule(lrs, losses) -> Suggestion``: what ``find_lr(method=...)`` accepts besides a name.

A rule with a ``num_steps`` parameter (fastai's rules) is also given the range test's
planned number of steps (see :func:`takes_num_steps`)."""


def takes_num_steps(rule: Callable[..., Suggestion]) -> bool:
    """Whether ``rule`` has a ``num_steps`` parameter, the range test's planned number of
    steps (fastai trims its curve by that, not by the number of points recorded)."""
    try:
        return "num_steps" in inspect.signature(rule).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False


def _declined(note: str, caveat: str | None = None) -> Suggestion:
    return Suggestion(None, None, note, caveat)


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


def _fastai_curve(
    lrs: Sequence[float] | FloatArray,
    losses: Sequence[float] | FloatArray,
    num_steps: int | None,
) -> tuple[FloatArray, FloatArray, int]:
    """The part of a recorded curve that fastai's ``lr_find`` hands its rules, and its offset.

    fastai drops the first ``num_it // 10`` points (``num_it`` = the planned number of steps,
    not the number recorded) and the last 5, then cuts the curve at its first NaN. The losses
    are the ones fastai's Recorder keeps: the bias-corrected EMA of the train loss (lrkit's
    ``Curve.smoothed`` with the default ``smooth=0.98``, fastai's ``beta``).
    """
    x = np.asarray(lrs, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"lrs and losses must be 1-D and of equal length (got shapes {x.shape} and {y.shape})"
        )
    if x.size and (np.any(~(x > 0)) or np.any(np.diff(x) <= 0)):
        raise ValueError("lrs must be positive and strictly increasing")
    planned = x.size if num_steps is None else num_steps
    if planned < x.size:
        raise ValueError(
            f"num_steps must be at least the number of points recorded ({x.size}); got "
            f"{num_steps}: pass the range test's planned number of steps, or None"
        )
    head = planned // 10
    nan = np.flatnonzero(np.isnan(y))
    # After a NaN fastai records NaNs up to num_it, so its last-5 trim falls there: the
    # curve ends at the first NaN or at num_it - 5, whichever comes first.
    end = min(int(nan[0]), planned - 5) if nan.size else x.size - 5
    return x[head:end], y[head:end], head


def _trimmed_note(x: FloatArray, head: int) -> str:
    return f"after fastai's trim: {x.size} points from index {head}"


def valley(
    lrs: Sequence[float] | FloatArray,
    losses: Sequence[float] | FloatArray,
    num_steps: int | None = None,
) -> Suggestion:
    """fastai's ``valley``: a point a half of the way into the longest valley of the loss.

    Exactly as fastai 2.8 computes it, on the curve fastai keeps (see below): ``L`` is the
    length of the longest strictly decreasing subsequence of the losses and ``e`` the first
    index where a subsequence of that length ends; the valley is taken to be the index window
    ``[e - L, e]`` (the *window* of that length ending at ``e``, not the subsequence's first
    element), and the suggestion is the LR at ``e - L + int(L/3) + int(L/3/2)`` (when no two
    points decrease, index 0). fastai indexes with Python's negative indices, so a window
    that starts before the curve can land on its last point; this rule does the same.

    The curve is fastai's: the first ``num_steps // 10`` and the last 5 points are dropped
    and the curve is cut at the first NaN (``num_steps`` is the planned number of steps,
    default ``len(lrs)``; :func:`lrkit.find_lr` passes it). The losses should be the
    bias-corrected EMA of the train loss, which is what :func:`lrkit.find_lr` hands this
    rule. ``tests/fixtures/fastai_rules.json`` holds fastai's own answers on 60+ curves.
    """
    x, y, head = _fastai_curve(lrs, losses, num_steps)
    n = x.size
    if n == 0:
        return _declined("too few points: nothing left after fastai's trim (first 10%, last 5)")
    length = np.ones(n, dtype=np.int64)
    for i in range(1, n):
        above = length[:i][y[:i] > y[i]]
        if above.size:
            length[i] = int(above.max()) + 1
    longest = int(length.max())
    end = int(np.argmax(length))  # the first index that ends a longest descent
    start = end - longest if longest > 1 else 0
    sections = (end - start) / 3
    i = (start + int(sections) + int(sections / 2)) % n
    return Suggestion(
        float(x[i]),
        head + i,
        f"a half of the way into the longest valley ({longest} points up to "
        f"lr {x[end]:.3g}); {_trimmed_note(x, head)}",
    )


def steep(
    lrs: Sequence[float] | FloatArray,
    losses: Sequence[float] | FloatArray,
    num_steps: int | None = None,
) -> Suggestion:
    """fastai's ``steep``: the LR at the left end of the steepest segment of the loss.

    Slope of each segment = ``(loss[i+1] - loss[i]) / (ln lr[i+1] - ln lr[i])`` on fastai's
    trimmed curve (see :func:`valley`); the suggestion is ``lr[i]`` of the most negative one
    (fastai returns it even when no segment falls). Compare :func:`steepest`, lrkit's own
    steepest-descent rule, which uses central differences and looks only left of the minimum.
    """
    x, y, head = _fastai_curve(lrs, losses, num_steps)
    if x.size < 2:
        return _declined("too few points after fastai's trim (first 10%, last 5): need 2")
    slope = np.diff(y) / np.diff(np.log(x))
    i = int(np.argmin(slope))
    return Suggestion(
        float(x[i]),
        head + i,
        f"steepest segment, {slope[i]:.3g} loss per e-fold of lr; {_trimmed_note(x, head)}",
    )


def minimum(
    lrs: Sequence[float] | FloatArray,
    losses: Sequence[float] | FloatArray,
    num_steps: int | None = None,
) -> Suggestion:
    """fastai's ``minimum``: the LR of the lowest loss on fastai's trimmed curve, ÷ 10.

    At the minimum the loss has stopped improving and is about to diverge; a tenth of it is
    the classic safe choice. The trim (see :func:`valley`) drops the first 10% and the last
    5 points, so a noise dip right at the start of the sweep does not count.
    """
    x, y, head = _fastai_curve(lrs, losses, num_steps)
    if x.size == 0:
        return _declined("too few points: nothing left after fastai's trim (first 10%, last 5)")
    i = int(np.argmin(y))
    return Suggestion(
        float(x[i] / 10.0),
        head + i,
        f"lowest loss {y[i]:.4g} at lr={x[i]:.3g}, ÷10; {_trimmed_note(x, head)}",
    )


SLIDE_WINDOW = 15  # fastai's lr_diff: points between the two compared gradients
SLIDE_THRESHOLD = 0.005  # fastai's thresh, in loss per point (absolute, not relative)


def slide(
    lrs: Sequence[float] | FloatArray,
    losses: Sequence[float] | FloatArray,
    num_steps: int | None = None,
) -> Suggestion:
    """fastai's ``slide`` (its interval slide rule) with fastai's defaults.

    ``g = numpy.gradient(losses)`` per point on fastai's trimmed curve (see :func:`valley`).
    A pair of points 15 apart slides left from the end of the curve while their gradients
    differ by more than 0.005; the suggestion is the LR of the left point of the last pair
    that did (of the first pair when none did). Declines on fewer than 16 points, where
    fastai raises an IndexError. The threshold is in loss units: the rule reads a loss of
    scale ~1.
    """
    x, y, head = _fastai_curve(lrs, losses, num_steps)
    n = x.size
    if n < SLIDE_WINDOW + 1:
        return _declined(
            f"too few points after fastai's trim (first 10%, last 5): need {SLIDE_WINDOW + 1}"
        )
    grad = np.gradient(y)
    right, left = n - 1, n - 1 - SLIDE_WINDOW
    chosen = left
    while left >= 0 and abs(grad[right] - grad[left]) > SLIDE_THRESHOLD:
        chosen = left
        right, left = right - 1, left - 1
    return Suggestion(
        float(x[chosen]),
        head + chosen,
        f"interval slide: gradients {SLIDE_WINDOW} points apart agree within "
        f"{SLIDE_THRESHOLD} left of here; {_trimmed_note(x, head)}",
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


class _Valley(NamedTuple):
    log_lr: float  # the valley estimate, log10
    start: int  # where the descent starts (10% of the drop made)
    lowest: int  # the lag-free (Gaussian-smoothed) minimum
    note: str


def _valley_estimate(x: FloatArray, y: FloatArray) -> _Valley | Suggestion:
    """The steep part of the valley, read off a lag-free smoothing, or a declining
    :class:`Suggestion` when there is no valley."""
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
    note = f"steepest {10 ** logx[s]:.3g}, descent middle {10 ** logx[v]:.3g}"
    return _Valley(log_lr, v_start, lowest, note)


AUTO_NOISE_HEAD = 0.1
"""The sweep's first stretch of noise, as a fraction of its points: ``auto`` never suggests
an LR below the LR at this fraction of the sweep, and its EMA minimum is looked for only
after it. There the LR is too small to change the loss, and the bias-corrected EMA averages
fewer than ``AUTO_NOISE_HEAD × num_steps`` losses, so its dips are batch noise (fastai and
Lightning skip the same 10%). Re-exported by :mod:`lrkit.suggest.policy`."""

AUTO_MAX_DISAGREEMENT = 1.5
"""Decades: ``auto``'s two estimates are averaged only when they lie at most this far apart.

Each alone was measured to err by up to half a decade from the best LR (the
suggestion-quality suite, ``docs/suggestion.md``), so two sound estimates lie about a decade
apart at most; on dense sweeps the EMA's lag adds up to half a decade more (1.2 decades on a
clean synthetic sigmoid at 20 points per decade). The recorded failures lie further apart:
1.7-2.5 decades on the tiny ViT of ``tests/fixtures/finder_curves.json``, 3.6 in issue 14.
A wider gap means one estimate erred by more than it ever did where it was measured.
Then ``auto`` keeps the estimate nearer a third one,
fastai's :func:`valley` on the EMA curve (the lag-free loss minimum ÷ 10 when that
declines), and says so in ``res.caveats``.
Re-exported by :mod:`lrkit.suggest.policy`, where the wider suite scores it held out."""

RERUN_ADVICE = (
    "rerun find_lr with more steps (num_steps={steps}) or a wider range (a lower start_lr "
    "if the loss falls from the first steps, a higher end_lr if it never rose), or read "
    "the LR off res.plot()"
)


def _rerun(x: FloatArray) -> str:
    return RERUN_ADVICE.format(steps=max(2 * x.size, 100))


@raw_input
def auto(
    lrs: Sequence[float] | FloatArray,
    losses: Sequence[float] | FloatArray,
    *,
    max_disagreement: float = AUTO_MAX_DISAGREEMENT,
    noise_head: float = AUTO_NOISE_HEAD,
) -> Suggestion:
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

    *Minimum estimate* — the LR of the lowest EMA-smoothed (β = 0.98) loss, looked for from
    the start of the descent and past the sweep's first ``noise_head`` (10%) of points, ÷ 10.

    ``auto`` is the geometric mean of the two. Each alone errs by up to half a decade, on
    different tasks; on the first six tasks of the suggestion-quality benchmark (4 seeds,
    constant LR and one-cycle) the mean's worst-case regret was about half of either's.
    Guards, each with its reason in the Suggestion's ``caveat`` (``res.caveats``):

    - an estimate below the LR at ``noise_head`` of the sweep (where the loss is noise) is
      set aside; so ``auto`` is never below ``start_lr``;
    - two estimates more than ``max_disagreement`` decades apart are not averaged: the one
      nearer a third estimate, fastai's :func:`valley` of the EMA curve, is kept (see
      :data:`AUTO_MAX_DISAGREEMENT`);
    - with no estimate left, or no valley, ``auto`` declines and says what to do.

    ``docs/suggestion.md`` has the evidence and the recorded curves behind each guard.
    """
    x, y = _curve(lrs, losses)
    if x.size < 5:
        return _declined(
            "too few points (need at least 5)",
            f"no auto suggestion: only {x.size} finite points; {_rerun(x)}",
        )
    estimate = _valley_estimate(x, y)
    if isinstance(estimate, Suggestion):
        return _declined(estimate.note, f"no auto suggestion ({estimate.note}); {_rerun(x)}")
    head = min(max(int(np.ceil(noise_head * x.size)), 1), x.size - 1)
    floor = float(np.log10(x[head]))
    search = max(estimate.start, head)
    lowest_ema = search + int(np.argmin(_ema(y, AUTO_EMA)[search:]))
    estimates = {
        "valley": (estimate.log_lr, f"valley {10**estimate.log_lr:.3g}: {estimate.note}"),
        "EMA minimum ÷10": (float(np.log10(x[lowest_ema] / 10.0)), ""),
    }
    caveats = []
    for name, (log_lr, _) in list(estimates.items()):
        if log_lr < floor:
            del estimates[name]
            caveats.append(
                f"auto set aside its {name} estimate ({10**log_lr:.3g}): it lies in the "
                f"sweep's first {100 * noise_head:.0f}% (below lr {x[head]:.3g}), where the "
                "loss is batch noise"
            )
    if not estimates:
        return _declined(
            "no estimate above the sweep's first stretch of noise",
            f"no auto suggestion: {'; '.join(caveats)}. The curve falls too early for "
            f"this sweep: rerun find_lr with a lower start_lr, or with more steps "
            f"(num_steps={max(2 * x.size, 100)})",
        )
    # The tie-breaker is a third, independent estimate: fastai's valley on the EMA curve
    # (the lag-free minimum ÷ 10 when it declines).
    third = valley(x, _ema(y, AUTO_EMA))
    referee_name = "fastai's valley" if third.lr is not None else "lowest smoothed loss ÷10"
    referee = float(np.log10(third.lr if third.lr is not None else x[estimate.lowest] / 10.0))
    if len(estimates) == 2:
        (_, (a, _)), (_, (b, _)) = estimates.items()
        if abs(a - b) > max_disagreement:
            keep = min(estimates, key=lambda k: abs(estimates[k][0] - referee))
            drop = next(k for k in estimates if k != keep)
            caveats.append(
                f"auto's two estimates disagree by {abs(a - b):.1f} decades (more than "
                f"{max_disagreement:g}): valley {10**a:.3g}, EMA minimum ÷10 {10**b:.3g}; "
                f"it kept the {keep} estimate, the one nearer {referee_name} "
                f"({10**referee:.3g}), and set the {drop} aside. The curve is ambiguous: "
                f"check res.plot(), or rerun with more steps or runs=3"
            )
            del estimates[drop]
    log_lr = float(np.mean([v for v, _ in estimates.values()]))
    index = int(np.argmin(np.abs(np.log10(x) - log_lr)))
    if len(estimates) == 2:
        note = (
            f"geometric mean of the valley ({10 ** estimates['valley'][0]:.3g}: "
            f"{estimate.note}) and the EMA minimum ÷10 "
            f"({10 ** estimates['EMA minimum ÷10'][0]:.3g})"
        )
    else:
        ((name, (value, _)),) = estimates.items()
        note = f"the {name} estimate alone ({10**value:.3g}); the other was set aside"
    return Suggestion(float(10.0**log_lr), index, note, "; ".join(caveats) or None)


METHODS: dict[str, Rule] = {
    "auto": auto,
    "steepest": steepest,
    "valley": valley,
    "minimum": minimum,
    "steep": steep,
    "slide": slide,
}
"""Every rule by name, in the order results list them."""

RAW_INPUT = frozenset(name for name, rule in METHODS.items() if reads_raw(rule))
"""The built-in rules marked :func:`raw_input`; the others read the finder's EMA curve."""
