"""Built-in tasks: a model, its data, its loss and metric, and sensible training defaults.

``get_task("digits-mlp")`` returns a :class:`Task`; ``get_task("mypkg.tasks:make_task")``
imports a user's function that returns one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from lrkit.tasks._task import Task

__all__ = ["TASKS", "Task", "get_task"]


def _digits_mlp() -> Task:
    from lrkit.tasks.digits import digits_mlp

    return digits_mlp()


TASKS: dict[str, Callable[[], Task]] = {
    "digits-mlp": _digits_mlp,
}
"""Built-in task factories by name."""


def get_task(name: str) -> Task:
    """A built-in task by name, or ``"module.path:function"`` returning a user's Task."""
    if name in TASKS:
        return TASKS[name]()
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import task {name!r}: {exc}") from exc
        task = factory()
        if not isinstance(task, Task):
            raise ValueError(f"{name} returned {type(task).__name__}, not an lrkit Task")
        return task
    raise ValueError(
        f"unknown task {name!r}; built-in tasks: {', '.join(sorted(TASKS))}, "
        "or 'module.path:function' for your own"
    )
