"""Built-in tasks: a model, its data, its loss and metric, and sensible training defaults.

``get_task("digits-mlp")`` returns a :class:`Task`; ``get_task("mypkg.tasks:make_task")``
imports a user's function that returns one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from lrkit.tasks._task import OPTIMIZERS, Task, num_samples, targets_of

__all__ = ["OPTIMIZERS", "TASKS", "Task", "get_task", "num_samples", "targets_of"]


def _digits_mlp(data_dir: Path | None) -> Task:
    from lrkit.tasks.digits import digits_mlp

    return digits_mlp()


def _mnist_lenet(data_dir: Path | None) -> Task:
    from lrkit.tasks.images import mnist_lenet

    return mnist_lenet()


def _fashion_mnist_lenet(data_dir: Path | None) -> Task:
    from lrkit.tasks.images import fashion_mnist_lenet

    return fashion_mnist_lenet(data_dir)


TASKS: dict[str, Callable[[Path | None], Task]] = {
    "digits-mlp": _digits_mlp,
    "mnist-lenet": _mnist_lenet,
    "fashion-mnist-lenet": _fashion_mnist_lenet,
}
"""Built-in task factories by name (each takes the optional data directory)."""


def get_task(
    name: str,
    *,
    data_dir: str | Path | None = None,
    fold: int | None = None,
    n_folds: int = 5,
    seed: int = 0,
) -> Task:
    """A built-in task by name, or ``"module.path:function"`` returning a user's Task.

    With ``fold``, the task's data is split into ``n_folds`` cross-validation folds (seeded)
    and fold ``fold`` is the validation set.
    """
    if name in TASKS:
        task = TASKS[name](Path(data_dir) if data_dir is not None else None)
    elif ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import task {name!r}: {exc}") from exc
        task = factory()
        if not isinstance(task, Task):
            raise ValueError(f"{name} returned {type(task).__name__}, not an lrkit Task")
    else:
        raise ValueError(
            f"unknown task {name!r}; built-in tasks: {', '.join(sorted(TASKS))}, "
            "or 'module.path:function' for your own"
        )
    return task if fold is None else task.fold(fold, n_folds, seed)
