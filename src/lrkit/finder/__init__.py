"""The LR range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017, §3.3).

Train for a few steps while the learning rate grows from tiny to huge, record the loss at
each step, and read a good learning rate off the curve: on the steep downward slope, left of
the minimum. :func:`find_lr` runs the test and returns a :class:`FinderResult`; it leaves the
model, the optimizer and the RNGs exactly as it found them.

The parts: :mod:`~lrkit.finder.config` (the settings, checked), :mod:`~lrkit.finder.tracker`
(smoothing and the stop rule, shared by both engines), :mod:`~lrkit.finder.serial` and
:mod:`~lrkit.finder.batched` (the engines), :mod:`~lrkit.finder.result` (the data returned).
The suggestion policy lives in :mod:`lrkit.suggest`.
"""

from __future__ import annotations

from lrkit.finder.config import FinderConfig, Mode, lr_schedule
from lrkit.finder.find import find_lr
from lrkit.finder.result import Curve, FinderResult

# lrkit 0.1 kept the policy here; it lives in lrkit.suggest now (the same objects).
from lrkit.suggest.policy import SCHEDULE_FACTORS, TINY_DATA_PASSES, UNSTABLE_DECADES

__all__ = [
    "SCHEDULE_FACTORS",
    "TINY_DATA_PASSES",
    "UNSTABLE_DECADES",
    "Curve",
    "FinderConfig",
    "FinderResult",
    "Mode",
    "find_lr",
    "lr_schedule",
]
