"""Learning-rate schedules as pure, immutable functions ``step -> lr``, and their combinators.

Every schedule is a frozen dataclass you call with a step number (``0, 1, 2, …``); the value
is computed in closed form, so there is no state to drift or to save: resuming is just calling
with the step you are at. Schedules print as their spec and round-trip through it:

>>> from lrkit import schedules as S
>>> s = S.warmup(S.cosine(max_lr=0.1, total_steps=100, min_lr=0.001), warmup_steps=10)
>>> s
warmup(schedule=cosine(max_lr=0.1, total_steps=100, min_lr=0.001), warmup_steps=10)
>>> [round(s(t), 4) for t in (0, 5, 10, 60, 110)]
[0.01, 0.055, 0.1, 0.0505, 0.001]
>>> S.parse(s.to_spec()) == s
True

One vocabulary across every schedule: ``max_lr`` the top, ``min_lr`` the floor, ``start_lr``
and ``end_lr`` the ends of a ramp, ``total_steps`` the whole length, ``warmup_steps``,
``up_steps`` and ``down_steps`` the length of a phase, ``cycle_steps`` and ``interval_steps``
a period (see the README's table). The names of lrkit 0.1 are accepted for one release, with a
``DeprecationWarning`` naming the new one.

Drive a torch optimizer with :func:`lrkit.to_torch`; plot with :func:`lrkit.plot_schedule`.

The modules, one job each: ``_base`` (the Schedule class and its checks), ``_shapes``
(closed-form shapes), ``_cycles`` (one-cycle, cyclic, SGDR, WSD), ``_combinators`` (warmup, join,
scale, shift), ``_spec`` (parse, names, dicts), ``_presets`` (``for_run``), ``_frameworks``
(other frameworks' schedules by their names: ``hf``, ``timm_cosine``).
"""

from __future__ import annotations

from lrkit.schedules._base import Schedule
from lrkit.schedules._combinators import (
    Join,
    Scale,
    Shift,
    Warmup,
    join,
    scale,
    shift,
    warmup,
)
from lrkit.schedules._cycles import SGDR, WSD, Cyclic, OneCycle, cyclic, one_cycle, sgdr, wsd
from lrkit.schedules._frameworks import HF_SCHEDULES, hf, timm_cosine
from lrkit.schedules._presets import PRESETS, for_run
from lrkit.schedules._shapes import (
    Anneal,
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    Linear,
    MultiStep,
    PiecewiseConstant,
    Polynomial,
    Step,
    anneal,
    constant,
    cosine,
    exponential,
    inverse_sqrt,
    linear,
    multistep,
    piecewise_constant,
    polynomial,
    step,
)
from lrkit.schedules._spec import names, parse

__all__ = [
    "HF_SCHEDULES",
    "PRESETS",
    "SGDR",
    "WSD",
    "Anneal",
    "Constant",
    "Cosine",
    "Cyclic",
    "Exponential",
    "InverseSqrt",
    "Join",
    "Linear",
    "MultiStep",
    "OneCycle",
    "PiecewiseConstant",
    "Polynomial",
    "Scale",
    "Schedule",
    "Shift",
    "Step",
    "Warmup",
    "anneal",
    "constant",
    "cosine",
    "cyclic",
    "exponential",
    "for_run",
    "hf",
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
    "shift",
    "step",
    "timm_cosine",
    "warmup",
    "wsd",
]
