"""The presets the CLI, sweeps and ``fit_many`` fill in: a bare name, an LR and a run length."""

from __future__ import annotations

from lrkit.schedules._base import Schedule
from lrkit.schedules._combinators import Warmup
from lrkit.schedules._cycles import WSD, OneCycle
from lrkit.schedules._shapes import Constant, Cosine, Linear
from lrkit.schedules._spec import parse

PRESETS = ("constant", "cosine", "linear", "one_cycle", "wsd", "warmup_cosine")
"""The bare names :func:`for_run` fills in."""


def for_run(spec: str, lr: float, total_steps: int) -> Schedule:
    """A schedule from a bare name filled with ``lr`` and ``total_steps``, or a full spec.

    Bare names: constant, cosine (to 0), linear (to 0), one_cycle (``lr`` is its max), wsd (5%
    warmup), warmup_cosine (5% linear warmup from lr/10, then cosine to 0). ``lr`` is the
    peak in every one.

    >>> for_run("warmup_cosine", 0.1, 1000)
    warmup(schedule=cosine(max_lr=0.1, total_steps=950), warmup_steps=50)
    """
    name = spec.strip()
    warm = max(total_steps // 20, 1)
    if name == "constant":
        return Constant(lr)
    if name == "cosine":
        return Cosine(max_lr=lr, total_steps=total_steps)
    if name == "linear":
        return Linear(start_lr=lr, end_lr=0.0, total_steps=total_steps)
    if name == "one_cycle":
        return OneCycle(max_lr=lr, total_steps=total_steps)
    if name == "wsd":
        return WSD(max_lr=lr, total_steps=total_steps, warmup_steps=warm)
    if name == "warmup_cosine":
        return Warmup(Cosine(max_lr=lr, total_steps=max(total_steps - warm, 1)), warmup_steps=warm)
    return parse(name)
