"""lrkit: the learning-rate toolkit for PyTorch.

>>> import lrkit
>>> res = lrkit.find_lr(model, optimizer, loader, criterion, num_steps=30, progress=False)
>>> res                                                                      # doctest: +ELLIPSIS
FinderResult(suggestion=... [constant schedule, from auto], rules (raw): auto=..., stop='completed')
>>> sched = lrkit.schedules.one_cycle(max_lr=res.suggestion, total_steps=1000)
>>> torch_sched = lrkit.to_torch(optimizer, sched)
>>> optimizer.param_groups[0]["lr"] == sched(0)
True
"""

from __future__ import annotations

from lrkit import schedules, suggest
from lrkit._plot import plot_schedule  # matplotlib is imported only when it is called
from lrkit.finder import FinderResult, find_lr
from lrkit.finetune import FineTuneResult, fine_tune
from lrkit.groups import describe_groups, freeze, param_groups, unfreeze
from lrkit.plateau import ReduceOnPlateau
from lrkit.sweeps import logspace, sweep
from lrkit.tasks import Task, get_task
from lrkit.torch_sched import ScheduleLR, to_torch
from lrkit.train import History, fit
from lrkit.tuning import TuneResult, tune
from lrkit.vectorized import fit_many

__all__ = [
    "FinderResult",
    "FineTuneResult",
    "History",
    "ReduceOnPlateau",
    "ScheduleLR",
    "Task",
    "TuneResult",
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
    "tune",
    "unfreeze",
]
__version__ = "0.1.0"
