"""Keras 3: any lrkit schedule as a ``keras.optimizers.schedules.LearningRateSchedule``.

>>> import keras
>>> from lrkit import schedules as S
>>> from lrkit.integrations.keras import to_keras
>>> lr = to_keras(S.hf("cosine", 1e-3, 100, 1000))
>>> opt = keras.optimizers.AdamW(learning_rate=lr)
>>> round(float(lr(100)), 6)
0.001

The schedule's value at the optimizer's iteration count, exactly (a Python float, which the
optimizer casts to its own dtype); it serializes through the schedule's spec, so a saved
model or optimizer config loads back with the same schedule. Keras is imported only when
:func:`to_keras` is first called (install ``lrkit[keras]``; pick the backend with
``KERAS_BACKEND`` before that).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from lrkit.schedules import Schedule, parse
from lrkit.schedules._base import integer

__all__ = ["to_keras"]


def to_keras(schedule: Schedule | str | Mapping[str, Any]) -> Any:
    """``schedule`` (a Schedule, a spec string or dict) as a Keras ``LearningRateSchedule``.

    Called with a step (an int, a numpy or backend integer scalar, or the optimizer's
    ``iterations`` variable) it returns ``schedule(step)``; ``get_config()`` holds the spec.
    """
    return _schedule_class()(parse(schedule))


@functools.cache
def _schedule_class() -> type[Any]:
    """The Keras class, defined once per process: Keras registers it by name for loading
    saved configs, and instances must share one class for ``isinstance`` to hold."""
    try:
        import keras
    except ImportError as exc:
        raise ImportError("to_keras needs Keras 3: pip install 'lrkit[keras]'") from exc

    @keras.saving.register_keras_serializable(package="lrkit", name="Schedule")
    class KerasSchedule(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
        """An lrkit schedule, called by Keras with the optimizer's iteration count."""

        def __init__(self, schedule: Schedule | str | Mapping[str, Any]) -> None:
            self.schedule = parse(schedule)

        def __call__(self, step: Any) -> float:
            return self.schedule.lr_at(_step(keras, step))

        def get_config(self) -> dict[str, Any]:
            return {"schedule": self.schedule.to_dict()}

        def __repr__(self) -> str:
            return f"to_keras({self.schedule.to_spec()})"

    return KerasSchedule


def _step(keras: Any, step: Any) -> int:
    """The step as a Python int: any integer type, the iterations variable included."""
    if isinstance(step, keras.Variable):
        step = step.value  # the backend's tensor
    return integer("step", step, 0)
