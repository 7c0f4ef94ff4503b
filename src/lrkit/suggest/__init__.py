"""Suggestion rules: pure functions of a range-test curve ``(lrs, losses) -> Suggestion``.

Every rule takes the learning rates of the sweep (increasing) and the losses measured at
them — the finder's *smoothed* losses, or the raw ones for a rule marked :func:`raw_input`
— and returns a :class:`Suggestion`: the LR (or ``None``), the index of the curve point it
came from, and a one-line note saying why. No rule looks at anything but its two arguments,
so each can be tested on synthetic curves with known answers. Any such function can be
passed to ``find_lr(method=...)``.

:mod:`lrkit.suggest.rules` holds the rules; :mod:`lrkit.suggest.policy` combines them over
runs, scales ``auto`` to a schedule's peak LR and says when to doubt the result.

>>> import numpy as np
>>> lrs = np.logspace(-5, 0, 51)
>>> losses = 2.0 - np.tanh(2 * (np.log10(lrs) + 3))   # falls fastest at 1e-3
>>> f"{steepest(lrs, losses).lr:.0e}"
'1e-03'
"""

from __future__ import annotations

from lrkit.suggest.policy import (
    SCHEDULE_FACTORS,
    TINY_DATA_PASSES,
    UNSTABLE_DECADES,
    Summary,
    caveats,
    resolve_method,
    suggestion_for,
    summarize,
)
from lrkit.suggest.rules import (
    AUTO_CAP,
    AUTO_EMA,
    AUTO_MAX_DISAGREEMENT,
    AUTO_NOISE_HEAD,
    METHODS,
    RAW_INPUT,
    Ema,
    Rule,
    Suggestion,
    auto,
    minimum,
    raw_input,
    reads_raw,
    slide,
    steep,
    steepest,
    takes_num_steps,
    valley,
)

__all__ = [
    "AUTO_CAP",
    "AUTO_EMA",
    "AUTO_MAX_DISAGREEMENT",
    "AUTO_NOISE_HEAD",
    "METHODS",
    "RAW_INPUT",
    "SCHEDULE_FACTORS",
    "TINY_DATA_PASSES",
    "UNSTABLE_DECADES",
    "Ema",
    "Rule",
    "Suggestion",
    "Summary",
    "auto",
    "caveats",
    "minimum",
    "raw_input",
    "reads_raw",
    "resolve_method",
    "slide",
    "steep",
    "steepest",
    "suggestion_for",
    "summarize",
    "takes_num_steps",
    "valley",
]
