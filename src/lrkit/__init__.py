"""lrkit: the learning-rate toolkit for PyTorch.

>>> import lrkit
>>> res = lrkit.find_lr(model, optimizer, loader, criterion)  # doctest: +SKIP
>>> sched = lrkit.schedules.one_cycle(max_lr=res.suggestion, total_steps=1000)  # doctest: +SKIP
>>> torch_sched = lrkit.to_torch(optimizer, sched)                             # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrkit import schedules, suggest
from lrkit.finder import FinderResult, find_lr
from lrkit.finetune import FineTuneResult, fine_tune
from lrkit.groups import describe_groups, freeze, param_groups, unfreeze
from lrkit.plateau import ReduceOnPlateau
from lrkit.sweeps import logspace, sweep
from lrkit.tasks import Task, get_task
from lrkit.torch_sched import ScheduleLR, to_torch
from lrkit.train import History, fit
from lrkit.vectorized import fit_many

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FinderResult",
    "FineTuneResult",
    "History",
    "ReduceOnPlateau",
    "ScheduleLR",
    "Task",
    "describe_groups",
    "find_lr",
    "fine_tune",
    "fit",
    "fit_many",
    "freeze",
    "get_task",
    "logspace",
    "param_groups",
    "plot_schedule",
    "schedules",
    "suggest",
    "sweep",
    "to_torch",
    "unfreeze",
]
__version__ = "0.1.0"


def plot_schedule(
    schedules: Any,
    steps: int,
    path: str | Path | None = None,
    ax: Axes | None = None,
    labels: list[str] | None = None,
) -> Figure:
    """Plot one schedule or several (objects or specs) over ``steps``; momentum on a twin axis.

    Matplotlib (the ``plot`` extra) is imported only when this is called.
    """
    from lrkit._plot import plot_schedule as plot

    return plot(schedules, steps, path=path, ax=ax, labels=labels)
