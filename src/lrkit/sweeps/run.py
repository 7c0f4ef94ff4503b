"""One run of a sweep, as a plain function of plain data: what every executor calls.

A run names its task (``RunConfig.task``); a :class:`TaskResolver` turns names into
:class:`~lrkit.tasks.Task` objects. Each sweep call makes its own resolver (and each worker
process or Ray actor its own), so the tasks built for one sweep never leak into another.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import torch

from lrkit.sweeps.spec import RunConfig, resolve_task
from lrkit.tasks import Task

__all__ = ["TaskResolver", "run_config"]


class TaskResolver:
    """The Task of each run, built once per (task, data_dir, fold, n_folds) and kept here.

    ``local`` maps ``"local:<name>"`` task names to Task objects handed to :func:`lrkit.sweep`
    in this process; every other name is resolved with :func:`lrkit.get_task`.
    """

    def __init__(self, local: Mapping[str, Task] | None = None) -> None:
        self._local = dict(local or {})
        self._built: dict[tuple[Any, ...], Task] = {}

    def __call__(self, config: RunConfig) -> Task:
        key = (config.task, config.data_dir, config.fold, config.n_folds)
        if key not in self._built:
            self._built[key] = self._build(config)
        return self._built[key]

    def _build(self, config: RunConfig) -> Task:
        task = self._local.get(config.task)
        if task is None:
            return resolve_task(config)
        return task if config.fold is None else task.fold(config.fold, config.n_folds)


def run_config(config: RunConfig, tasks: TaskResolver, threads: int = 1) -> dict[str, Any]:
    """Train one configuration on its task from ``tasks``; return its id, history and host.

    Runs use ``threads`` intra-op threads (default 1), so that a result does not depend on
    which executor or machine ran it; parallelism comes from running runs side by side.
    """
    task = tasks(config)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        history = task.fit(config.lr, schedule=config.schedule, optimizer=config.optimizer,
                           seed=config.seed, epochs=config.epochs, progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(previous)
    return {"id": config.id, "history": history.to_dict(), "host": socket.gethostname()}
