"""One run of a sweep, as a plain function of plain data: what every executor calls."""

from __future__ import annotations

import socket
from typing import Any

import torch

from lrkit.schedules import for_run
from lrkit.sweeps.spec import RunConfig, resolve_task
from lrkit.tasks import Task
from lrkit.train import fit

_TASKS: dict[tuple[Any, ...], Task] = {}
LOCAL_TASKS: dict[str, Task] = {}
"""Task objects passed to ``sweep`` in this process (the serial executor runs them)."""


def task_for(config: RunConfig) -> Task:
    """The run's Task, built once per process and fold."""
    key = (config.task, config.data_dir, config.fold, config.n_folds)
    if key not in _TASKS:
        if config.task in LOCAL_TASKS:
            task = LOCAL_TASKS[config.task]
            _TASKS[key] = task if config.fold is None else task.fold(config.fold, config.n_folds)
        else:
            _TASKS[key] = resolve_task(config)
    return _TASKS[key]


def run_config(config: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Train one configuration; return its id, history (as a dict) and host.

    Runs use ``threads`` intra-op threads (default 1), so that a result does not depend on
    which executor or machine ran it; parallelism comes from running runs side by side.
    """
    cfg = RunConfig(**config)
    task = task_for(cfg)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        loader = task.train_loader(cfg.seed)
        schedule = for_run(cfg.schedule, cfg.lr, cfg.epochs * len(loader))
        model = task.make_model(cfg.seed)
        optimizer = task.make_optimizer(model, lr=schedule(0), optimizer=cfg.optimizer)
        history = fit(
            model, optimizer, loader, task.criterion, cfg.epochs, schedule=schedule,
            val_loader=task.val_loader(), metrics=(task.metric,), seed=cfg.seed, progress=False,
        )  # fmt: skip
    finally:
        torch.set_num_threads(previous)
    return {"id": cfg.id, "history": history.to_dict(), "host": socket.gethostname()}
