"""Record each task × seed's range tests once: lrkit's, Lightning's and torch-lr-finder's.

    nice -n 19 .venv/bin/python -m benchmarks.suggest.curves [--tasks a,b]

Writes ``benchmarks/results/suggest_curves.json``: per task and seed, lrkit's
``FinderResult.to_dict()`` (its curve: LRs, raw and smoothed losses; any lrkit rule can be
recomputed from it offline, so a changed rule is scored without a new range test),
Lightning's ``Tuner.lr_find`` curve and suggestion, and torch-lr-finder's curve and its
steepest-point suggestion. Cached and resumable: a task × seed already recorded is skipped
(``--redo`` records again).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import warnings
from typing import Any

import numpy as np
import torch
from benchmarks.suggest.paths import RESULTS, SEEDS
from benchmarks.suggest.tasks import DEFAULT_LR, SUITE, TASKS

import lrkit
from lrkit.tasks import Task

PATH = RESULTS / "suggest_curves.json"


def lightning_test(task: Task, seed: int) -> dict[str, Any]:
    """Lightning's ``Tuner.lr_find`` at its defaults: its curve and its suggestion."""
    import lightning as L
    from lightning.pytorch.tuner import Tuner

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = task.make_model(seed)
            self.lr = DEFAULT_LR[task.optimizer]

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return task.criterion(self.model(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return task.make_optimizer(self.model, lr=self.lr)

    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1000, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=tmp)  # fmt: skip
        torch.manual_seed(seed)
        result = Tuner(trainer).lr_find(Module(), train_dataloaders=task.train_loader(seed),
                                        update_attr=False)  # fmt: skip
    if result is None:
        return {"lrs": [], "losses": [], "suggestion": None}
    return {"lrs": [float(v) for v in result.results["lr"]],
            "losses": [float(v) for v in result.results["loss"]],
            "suggestion": result.suggestion()}  # fmt: skip


def torch_lr_finder_test(task: Task, seed: int) -> dict[str, Any]:
    """torch-lr-finder's range test (1e-7 to 10, 100 steps) and its steepest-point rule, as
    its ``plot(suggest_lr=True)`` computes it (skip 10 points at the start, 5 at the end)."""
    from torch_lr_finder import LRFinder

    model = task.make_model(seed)
    finder = LRFinder(model, task.make_optimizer(model, lr=1e-7), task.criterion, device="cpu")
    torch.manual_seed(seed)
    finder.range_test(task.train_loader(seed), end_lr=10, num_iter=100)
    lrs, losses = np.array(finder.history["lr"]), np.array(finder.history["loss"])
    skip_start, skip_end = 10, 5
    suggestion = None
    if len(losses) > skip_start + skip_end + 2:
        cut_l, cut_lr = losses[skip_start:-skip_end], lrs[skip_start:-skip_end]
        suggestion = float(cut_lr[np.gradient(cut_l).argmin()])
    return {"lrs": lrs.tolist(), "losses": losses.tolist(), "suggestion": suggestion}


def lrkit_test(task: Task, seed: int) -> dict[str, Any]:
    """``lrkit.find_lr`` at its defaults, as a user calls it; the whole result."""
    model = task.make_model(seed)
    res = lrkit.find_lr(model, task.make_optimizer(model), task.train_loader(seed),
                        task.criterion, seed=seed, progress=False)  # fmt: skip
    return res.to_dict()


def record(names: list[str], redo: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PATH.read_text()) if PATH.exists() else {}
    for name in names:
        task = TASKS[name]()
        for seed in SEEDS:
            key = f"{name}|{seed}"
            if key in data and not redo:
                continue
            data[key] = {"lrkit": lrkit_test(task, seed),
                         "lightning": lightning_test(task, seed),
                         "torch-lr-finder": torch_lr_finder_test(task, seed)}  # fmt: skip
            PATH.parent.mkdir(parents=True, exist_ok=True)
            tmp = PATH.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(PATH)
        print(f"{name}: curves recorded", flush=True)
    return data


def quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(SUITE), help="comma-separated task names")
    parser.add_argument("--redo", action="store_true", help="record again what is recorded")
    args = parser.parse_args()
    quiet()
    record(args.tasks.split(","), args.redo)


if __name__ == "__main__":
    main()
