"""The schedules of other frameworks, by their own names, as lrkit schedules.

Each preset builds its schedule from lrkit's public pieces (so it plots, prints as a spec and
parses back) and gives the numbers of the framework it is named after:

- :func:`hf`: every Hugging Face ``SchedulerType`` (``get_scheduler(name, ...)``), the LR of
  each training step equal to transformers' to 1e-12 relative (the tests run both);
- :func:`timm_cosine`: timm's ``CosineLRScheduler`` with its warmup, cycle and k-decay options.

Keras has its own adapter, :func:`lrkit.integrations.keras.to_keras`.
"""

from __future__ import annotations

import math
from typing import Any

from lrkit.schedules._base import Schedule, fail, integer, non_negative, positive
from lrkit.schedules._combinators import Join, Shift, Warmup
from lrkit.schedules._cycles import SGDR, WSD
from lrkit.schedules._shapes import Anneal, Constant, Cosine, InverseSqrt, Linear, Polynomial

__all__ = ["HF_SCHEDULES", "hf", "timm_cosine"]

HF_SCHEDULES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
)
"""The names of transformers' ``SchedulerType`` that :func:`hf` builds (all but ``greedy``)."""

# scheduler_specific_kwargs each name takes, with their defaults in transformers.
_OPTIONS: dict[str, dict[str, Any]] = {
    "linear": {},
    "cosine": {"num_cycles": 0.5},
    "cosine_with_restarts": {"num_cycles": 1},
    "polynomial": {"lr_end": 1e-7, "power": 1.0},
    "constant": {},
    "constant_with_warmup": {},
    "inverse_sqrt": {"timescale": None},
    "reduce_lr_on_plateau": {},
    "cosine_with_min_lr": {"num_cycles": 0.5, "min_lr": None, "min_lr_rate": None},
    "cosine_warmup_with_min_lr": {
        "num_cycles": 0.5,
        "min_lr": None,
        "min_lr_rate": None,
        "warmup_lr_rate": None,
    },
    "warmup_stable_decay": {
        "num_decay_steps": None,
        "num_stable_steps": None,
        "warmup_type": "linear",
        "decay_type": "cosine",
        "min_lr_ratio": 0.0,
        "num_cycles": 0.5,
    },
}
_NEEDS_TRAINING_STEPS = {"linear", "cosine", "cosine_with_restarts", "polynomial"} | {
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
}


def _waves(max_lr: float, min_lr: float, steps: int, num_cycles: float) -> Schedule:
    """HF's ``min + (max - min) * (1 + cos(2 pi num_cycles t / steps)) / 2`` over ``steps``.

    Half a cosine down for ``num_cycles=0.5`` (a :class:`Cosine`); otherwise a :class:`Join`
    of half-waves, down and up in turn, whose knots may fall between steps.
    """
    if num_cycles == 0.5:
        return Cosine(max_lr=max_lr, total_steps=steps, min_lr=min_lr)
    half = steps / (2 * num_cycles)
    if not half >= 1:
        fail("num_cycles", num_cycles, f"<= {steps / 2} for {steps} decay steps")
    pieces: list[Schedule] = []
    boundaries: list[int] = []
    for k in range(math.ceil(2 * num_cycles)):
        first = math.ceil(k * half)
        start, end = (max_lr, min_lr) if k % 2 == 0 else (min_lr, max_lr)
        pieces.append(
            Anneal(start, end, end_step=(k + 1) * half - first, start_step=k * half - first)
        )
        if k:
            boundaries.append(first)
    return Join(tuple(pieces), tuple(boundaries))


def _restarts(max_lr: float, steps: int, num_cycles: int) -> Schedule:
    """HF's hard restarts: ``num_cycles`` half-cosines from ``max_lr`` to 0 over ``steps``."""
    cycles = integer("num_cycles", num_cycles)
    if cycles == 1:
        return Cosine(max_lr=max_lr, total_steps=steps)
    length = steps / cycles
    if not length >= 1:
        fail("num_cycles", num_cycles, f"<= {steps} for {steps} decay steps")
    pieces: list[Schedule] = []
    boundaries: list[int] = []
    for k in range(cycles):
        first = math.ceil(k * length)
        end = (k + 1) * length - first
        pieces.append(Anneal(max_lr, 0.0, end_step=end, start_step=k * length - first))
        if k:
            boundaries.append(first)
    return Join(tuple(pieces), tuple(boundaries))


def _min_lr(name: str, max_lr: float, options: dict[str, Any]) -> float:
    min_lr, rate = options["min_lr"], options["min_lr_rate"]
    if (min_lr is None) == (rate is None):
        raise ValueError(f"hf({name!r}) needs exactly one of min_lr= and min_lr_rate=")
    if min_lr is not None:
        return non_negative("min_lr", min_lr)
    return max_lr * non_negative("min_lr_rate", rate)


def _with_warmup(schedule: Schedule, warmup_steps: int) -> Schedule:
    """HF's linear warmup from 0 (``t / warmup_steps``) in front of ``schedule``."""
    return Warmup(schedule, warmup_steps, start_factor=0.0) if warmup_steps else schedule


def hf(
    name: str,
    max_lr: float,
    num_warmup_steps: int | None = None,
    num_training_steps: int | None = None,
    **scheduler_specific_kwargs: Any,
) -> Schedule:
    """The lrkit schedule of transformers' ``get_scheduler(name, ...)``, peak ``max_lr``.

    The arguments are those of ``get_scheduler`` (``max_lr`` is the optimizer's ``lr``,
    which HF's schedules multiply); ``scheduler_specific_kwargs`` come as keywords. The LRs
    of the ``num_training_steps`` training steps equal transformers'; after them lrkit's hold
    their last value, while some of HF's lambdas keep moving (a cosine rises again).
    ``"reduce_lr_on_plateau"`` is ``constant(max_lr)``: pass the plateau's options to
    :class:`lrkit.ReduceOnPlateau` and it to :func:`lrkit.to_torch` (``plateau=``).
    ``"greedy"`` (GreedyLR) adapts to the loss and has no closed form. Each other name is a
    composition of lrkit schedules (its repr says which), so its formula is theirs: e.g.
    ``"linear"`` is ``max_lr * t / w`` for ``t < w = num_warmup_steps``, then
    ``max_lr * (T - t) / (T - w)`` with ``T = num_training_steps``:

    >>> s = hf("linear", max_lr=1.0, num_warmup_steps=2, num_training_steps=10)
    >>> [s(t) for t in (1, 2, 6, 10)]
    [0.5, 1.0, 0.5, 0.0]

    >>> hf("constant_with_warmup", max_lr=0.1, num_warmup_steps=10)
    warmup(schedule=constant(lr=0.1), warmup_steps=10, start_factor=0.0)
    >>> s = hf("warmup_stable_decay", 1.0, 10, 100, num_decay_steps=20)
    >>> [round(s(t), 4) for t in (5, 50, 90, 95, 100)]
    [0.5, 1.0, 0.5, 0.1464, 0.0]
    """
    if name == "greedy":
        raise ValueError(
            "hf('greedy'): GreedyLR raises and lowers the LR from the loss as it trains, so "
            "it has no closed form; lrkit's closest is to_torch(..., plateau=ReduceOnPlateau())"
        )
    if name not in _OPTIONS:
        fail("name", name, f"one of {', '.join(HF_SCHEDULES)}")
    unknown = sorted(set(scheduler_specific_kwargs) - set(_OPTIONS[name]))
    if unknown:
        valid = ", ".join(_OPTIONS[name]) or "none"
        raise ValueError(
            f"hf({name!r}) has no option {', '.join(map(repr, unknown))}; valid: {valid}"
            + (
                "; the plateau's options go to lrkit.ReduceOnPlateau"
                if name == "reduce_lr_on_plateau"
                else ""
            )
        )
    options = {**_OPTIONS[name], **scheduler_specific_kwargs}
    max_lr = positive("max_lr", max_lr)
    if name in ("constant", "reduce_lr_on_plateau"):
        return Constant(max_lr)
    if num_warmup_steps is None:
        raise ValueError(f"hf({name!r}) needs num_warmup_steps (0 for none)")
    warm = integer("num_warmup_steps", num_warmup_steps, 0)
    if name == "constant_with_warmup":
        return _with_warmup(Constant(max_lr), warm)
    if name == "inverse_sqrt":
        timescale = options["timescale"]
        if timescale is None:  # HF: the warmup, or 10,000 without one
            timescale = warm or 10_000
        return InverseSqrt(max_lr, warm, timescale=None if timescale == warm else timescale)
    if name == "warmup_stable_decay":
        return _wsd(max_lr, warm, num_training_steps, options)
    if num_training_steps is None:
        raise ValueError(f"hf({name!r}) needs num_training_steps")
    total = integer("num_training_steps", num_training_steps)
    if total <= warm:
        fail("num_training_steps", total, f"> num_warmup_steps ({warm})")
    decay = total - warm
    if name == "linear":
        return _with_warmup(Linear(max_lr, 0.0, decay), warm)
    if name == "cosine":
        return _with_warmup(_waves(max_lr, 0.0, decay, options["num_cycles"]), warm)
    if name == "cosine_with_restarts":
        return _with_warmup(_restarts(max_lr, decay, options["num_cycles"]), warm)
    if name == "polynomial":
        lr_end = non_negative("lr_end", options["lr_end"])
        if not lr_end < max_lr:
            fail("lr_end", lr_end, f"< max_lr ({max_lr})")
        return _with_warmup(Polynomial(max_lr, lr_end, decay, power=options["power"]), warm)
    min_lr = _min_lr(name, max_lr, options)
    if name == "cosine_with_min_lr":
        return _with_warmup(_waves(max_lr, min_lr, decay, options["num_cycles"]), warm)
    # cosine_warmup_with_min_lr: the warmup reaches max_lr at its last step, and the decay
    # runs one step ahead (its progress is (t - warmup + 1) / decay).
    after = Shift(_waves(max_lr, min_lr, decay, options["num_cycles"]), 1)
    if not warm:
        return after
    rate = options["warmup_lr_rate"]
    if rate is None:  # (t + 1) / warmup
        ramp: Schedule = Constant(max_lr) if warm == 1 else Linear(max_lr / warm, max_lr, warm - 1)
    else:
        ramp = Linear(max_lr * non_negative("warmup_lr_rate", rate), max_lr, max(warm - 1, 1))
    return Join((ramp, after), (warm,))


def _wsd(max_lr: float, warm: int, total: int | None, options: dict[str, Any]) -> Schedule:
    decay_steps, stable = options["num_decay_steps"], options["num_stable_steps"]
    if decay_steps is None:
        raise ValueError("hf('warmup_stable_decay') needs num_decay_steps=")
    decay_steps = integer("num_decay_steps", decay_steps)
    if stable is None:
        if total is None:
            raise ValueError(
                "hf('warmup_stable_decay') needs num_training_steps or num_stable_steps="
            )
        stable = integer("num_training_steps", total) - warm - decay_steps
    stable = integer("num_stable_steps", stable, 0)  # HF: num_stable_steps wins over the total
    shapes = {"linear": "linear", "cosine": "cosine", "1-sqrt": "sqrt"}
    for key in ("warmup_type", "decay_type"):
        if options[key] not in shapes:
            fail(key, options[key], "one of 'linear', 'cosine', '1-sqrt'")
    if options["num_cycles"] != 0.5:
        fail("num_cycles", options["num_cycles"], "0.5 (half a cosine) in warmup_stable_decay")
    total_steps = warm + stable + decay_steps
    ratio = non_negative("min_lr_ratio", options["min_lr_ratio"])
    return WSD(
        max_lr=max_lr,
        total_steps=total_steps,
        warmup_steps=warm,
        decay_frac=decay_steps / total_steps,
        decay_shape=shapes[options["decay_type"]],
        min_lr=max_lr * ratio,
        warmup_shape=shapes[options["warmup_type"]],
    )


def timm_cosine(
    max_lr: float,
    t_initial: int,
    lr_min: float = 0.0,
    cycle_mul: float = 1.0,
    cycle_decay: float = 1.0,
    cycle_limit: int = 1,
    warmup_t: int = 0,
    warmup_lr_init: float = 0.0,
    warmup_prefix: bool = False,
    k_decay: float = 1.0,
) -> Schedule:
    """timm's ``CosineLRScheduler`` (its names and defaults), peak ``max_lr``.

    ``t`` counts what you step: step the :func:`lrkit.to_torch` scheduler once per epoch
    for timm's ``t_in_epochs=True`` (``scheduler.step(epoch)``), once per update for
    ``t_in_epochs=False`` (``step_update``); the values are the same function of that count.
    The warmup runs linearly from ``warmup_lr_init`` to ``max_lr`` over ``warmup_t``; without
    ``warmup_prefix`` it overlaps the first steps of the cosine (which then starts at
    ``warmup_t`` into its first cycle), with it the cosine starts after it. Cycle ``i`` peaks
    at ``max_lr * cycle_decay**i`` and lasts ``t_initial * cycle_mul**i``; within it
    ``lr = lr_min + (peak_i - lr_min) * (1 + cos(pi * (t_cur / length_i) ** k_decay)) / 2``;
    after
    ``cycle_limit`` cycles the LR is ``lr_min``. timm's ``lr_scale`` per param group is
    honoured by :func:`lrkit.to_torch`. Not covered: ``cycle_mul < 1`` and the noise options.

    >>> s = timm_cosine(1.0, t_initial=10, warmup_t=2, warmup_lr_init=0.1)
    >>> [round(s(t), 4) for t in (0, 1, 2, 5, 10)]
    [0.1, 0.55, 0.9045, 0.5, 0.0]
    """
    cosine = SGDR(
        max_lr=max_lr,
        cycle_steps=t_initial,
        cycle_mult=cycle_mul,
        min_lr=lr_min,
        cycle_decay=cycle_decay,
        decay_mode="peak",
        k_decay=k_decay,
        cycle_limit=cycle_limit,
    )
    warm = integer("warmup_t", warmup_t, 0)
    if not warm:
        return cosine
    ramp = Linear(non_negative("warmup_lr_init", warmup_lr_init), max_lr, warm)
    return Join((ramp, cosine if warmup_prefix else Shift(cosine, warm)), (warm,))
