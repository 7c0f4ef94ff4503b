"""Run the suggestion-quality benchmark: oracle grids, every rule and peer, regret.

    make bench-suggest        # = .venv/bin/python -m benchmarks.suggest.run

Oracle: 13 half-decade LRs × seeds 0-7 × {constant, one-cycle (LR = max LR), cosine (LR =
peak)} per task, and quarter-decade points around the best (for ``benchmarks.suggest.fit``),
stored with ``lrkit.sweep`` in ``benchmarks/results/suggest/<task>/`` (cached and resumable:
a rerun only trains what is missing). Rules: lrkit's ``auto``, ``steepest``, ``valley``,
``minimum`` from one ``find_lr`` per task and seed; Lightning's ``Tuner.lr_find().suggestion()``;
torch-lr-finder's steepest point of its own range test; the fixed default (1e-3 for the
Adam family, 1e-2 for SGD). Each suggestion is trained with the same budget and seed, and
scored by its **regret**: oracle best (that seed's best grid LR) − achieved, also as % of
the range from the oracle's best down to the untrained model (a run that ends worse than
not training at all, diverged or not, counts as the untrained model: a regression run that
blows up to a huge error would otherwise stretch the range until every LR looks
near-optimal). A second regret, against the task's single best grid LR (seed mean: what a
grid search would pick), leaves out the luck of each seed's best (``regret_grid_pct``, same
scale).

    .venv/bin/python -m benchmarks.suggest.run [--tasks digits-gru,diabetes-mlp]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchmarks.suggest.tasks import DEFAULT_LR, GRIDS, TASKS

import lrkit
from lrkit.sweeps import Store
from lrkit.tasks import Task
from lrkit.train import METRICS

RESULTS = Path("benchmarks/results")
SEEDS = tuple(range(8))
PROTOCOLS = ("constant", "one_cycle", "cosine")
HIGHER_IS_BETTER = {"accuracy"}


def score(task: Task, record: Any) -> float:
    if record.status != "done" or record.diverged:
        return math.nan
    return float(record.summary["final"][task.metric])


def capped(value: float, floor: float, sign: int) -> float:
    """``value``, or the untrained model's ``floor`` when there is none (no suggestion, a
    diverged run) or it is worse (``sign``: +1 when higher is better)."""
    return value if math.isfinite(value) and sign * value > sign * floor else floor


def untrained(task: Task, seed: int) -> float:
    """The metric of the model as built, before any training: the floor of the range."""
    model, total, count = task.make_model(seed).eval(), 0.0, 0
    with torch.no_grad():
        for x, y in task.val_loader():
            total += float(METRICS[task.metric](model(x), y))
            count += len(y)
    return total / count


def train(
    task: Task, name: str, lrs: list[float], seeds: tuple[int, ...] = SEEDS
) -> dict[tuple[str, float, int], float]:
    """{(protocol, lr, seed): metric}, from the store (training only what is missing)."""
    lrkit.sweep(task, lrs=lrs, schedules=PROTOCOLS, optimizers=(task.optimizer,), seeds=seeds,
                epochs=task.epochs, store=RESULTS / "suggest" / name, name=name,
                progress=False, report=False)  # fmt: skip
    out = {}
    for r in Store(RESULTS / "suggest" / name).runs(name):
        c = r.config
        out[(c["schedule"], c["lr"], c["seed"])] = score(task, r)
    return out


def grid_best_lr(
    task: Task, grid: list[float], oracle: dict[tuple[str, float, int], float],
    floors: dict[int, float], protocol: str,
) -> float:  # fmt: skip
    """The grid LR with the best seed-mean metric (capped at the untrained model): the LR a
    grid search over the seeds would pick."""
    sign = 1 if task.metric in HIGHER_IS_BETTER else -1
    mean = [sum(sign * capped(oracle[(protocol, lr, s)], floors[s], sign) for s in SEEDS)
            for lr in grid]  # fmt: skip
    return grid[mean.index(max(mean))]


def fine_points(
    task: Task, grid: list[float], oracle: dict[tuple[str, float, int], float],
    floors: dict[int, float],
) -> list[float]:  # fmt: skip
    """Quarter-decade points between the grid's, within a decade of each protocol's best grid
    LR (seed mean): they let ``benchmarks.suggest.fit`` read any LR's outcome off the oracle
    by interpolation. They never count as the oracle's best."""
    logs = set()
    for protocol in PROTOCOLS:
        best = math.log10(grid_best_lr(task, grid, oracle, floors, protocol))
        logs |= {round(best + 0.25 + 0.5 * k, 2) for k in range(-4, 4)}
    return sorted(10**x for x in logs)


def lightning_suggestion(task: Task, seed: int) -> float | None:
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
    return None if result is None else result.suggestion()


def torch_lr_finder_suggestion(task: Task, seed: int) -> float | None:
    from torch_lr_finder import LRFinder

    model = task.make_model(seed)
    finder = LRFinder(model, task.make_optimizer(model, lr=1e-7), task.criterion, device="cpu")
    torch.manual_seed(seed)
    finder.range_test(task.train_loader(seed), end_lr=10, num_iter=100)
    lrs, losses = np.array(finder.history["lr"]), np.array(finder.history["loss"])
    # its steepest-point rule (as its plot(suggest_lr=True) computes it)
    skip_start, skip_end = 10, 5
    if len(losses) <= skip_start + skip_end + 2:
        return None
    cut_l, cut_lr = losses[skip_start:-skip_end], lrs[skip_start:-skip_end]
    return float(cut_lr[np.gradient(cut_l).argmin()])


def stability(task: Task) -> dict[str, float]:
    """Each lrkit rule's spread (decades) over ``find_lr(runs=3)``: three data orders."""
    model = task.make_model(0)
    res = lrkit.find_lr(model, task.make_optimizer(model), task.train_loader(0), task.criterion,
                        seed=0, runs=3, progress=False)  # fmt: skip
    return {f"lrkit {k}": res.spread.get(k, math.nan) for k in res.suggestions}


def suggestions(task: Task, seed: int) -> dict[str, float | None]:
    model = task.make_model(seed)
    res = lrkit.find_lr(model, task.make_optimizer(model), task.train_loader(seed),
                        task.criterion, seed=seed, progress=False)  # fmt: skip
    out: dict[str, float | None] = {f"lrkit {k}": v for k, v in res.suggestions.items()}
    for protocol in PROTOCOLS:  # the default suggestion, for the schedule it is asked for
        out[f"lrkit suggestion|{protocol}"] = res.suggestion_for(protocol)
    out["lightning"] = lightning_suggestion(task, seed)
    out["torch-lr-finder"] = torch_lr_finder_suggestion(task, seed)
    out["fixed default"] = DEFAULT_LR[task.optimizer]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    names = parser.parse_args().tasks.split(",")
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(1)
    results: dict[str, Any] = {"seeds": len(SEEDS), "tasks": {}}
    for name in names:
        task = TASKS[name]()
        grid = GRIDS["sgd" if task.optimizer == "sgd" else "adam"]
        oracle = train(task, name, grid)
        floors = {seed: untrained(task, seed) for seed in SEEDS}
        oracle |= train(task, name, fine_points(task, grid, oracle, floors))
        rules = {seed: suggestions(task, seed) for seed in SEEDS}
        wanted = sorted({lr for s in rules.values() for lr in s.values() if lr is not None})
        for seed in SEEDS:
            extra = sorted({lr for lr in rules[seed].values() if lr is not None})
            oracle |= train(task, name, extra, seeds=(seed,))
        sign = 1 if task.metric in HIGHER_IS_BETTER else -1
        rows = []
        for protocol in PROTOCOLS:
            values = {s: [capped(oracle[(protocol, lr, s)], floors[s], sign) for lr in grid]
                      for s in SEEDS}  # fmt: skip
            grid_lr = grid_best_lr(task, grid, oracle, floors, protocol)
            for seed in SEEDS:
                worst = floors[seed]
                best = max(values[seed], key=lambda v: sign * v)
                best_lr = grid[values[seed].index(best)]
                span = abs(best - worst) or 1.0
                at_grid_lr = values[seed][grid.index(grid_lr)]
                for key, lr in rules[seed].items():
                    rule, _, only = key.partition("|")
                    if only and only != protocol:
                        continue
                    got = oracle[(protocol, lr, seed)] if lr is not None else math.nan
                    achieved = capped(got, worst, sign)
                    regret = sign * (best - achieved)
                    rows.append({"protocol": protocol, "seed": seed, "rule": rule, "lr": lr,
                                 "best_lr": best_lr, "metric": achieved, "best": best,
                                 "regret": regret, "regret_pct": 100 * regret / span,
                                 "regret_grid_pct": 100 * sign * (at_grid_lr - achieved)
                                 / span})  # fmt: skip
        flat = {f"{p}|{lr}|{s}": v for (p, lr, s), v in oracle.items()}
        results["tasks"][name] = {"metric": task.metric, "rows": rows, "grid": grid,
                                  "oracle": flat, "untrained": floors,
                                  "suggestions": {str(s): r for s, r in rules.items()},
                                  "runs3_spread": stability(task)}  # fmt: skip
        print(f"{name}: done ({len(wanted)} suggested LRs)", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "suggest.json"
    if path.exists() and set(names) != set(TASKS):  # a partial run updates its tasks only
        results["tasks"] = json.loads(path.read_text())["tasks"] | results["tasks"]
    path.write_text(json.dumps(results, indent=1))
    write_tables(results)


def write_tables(results: dict[str, Any]) -> None:
    from benchmarks.suggest.report import write

    write(results, RESULTS)


if __name__ == "__main__":
    main()
