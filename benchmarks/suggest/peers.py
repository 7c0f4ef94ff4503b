"""The learning-rate-free peers, trained at each task's budget: Prodigy and Schedule-Free.

    nice -n 19 .venv/bin/python -m benchmarks.suggest.peers [--tasks a,b]

At their documented defaults, through lrkit's optimizer names (so ``Task.fit`` runs them
as a user would, Schedule-Free's ``train()``/``eval()`` switching included):

- Prodigy (``prodigyopt``) at lr = 1.0 with a constant LR, and with cosine annealing (its
  README's recommendation);
- Schedule-Free AdamW (lr 0.0025) for the Adam-family tasks, Schedule-Free SGD (lr 1.0,
  momentum 0.9) for the SGD tasks, constant (they replace the schedule).

Each run is stored in ``benchmarks/results/suggest-peers/<task>/`` (cached, resumable) and
scored against every protocol's oracle: the regret of using the peer instead of an LR
tuned for that protocol.
"""

from __future__ import annotations

import argparse
import math

from benchmarks.suggest.oracle import task_path
from benchmarks.suggest.paths import RESULTS, SEEDS
from benchmarks.suggest.tasks import SUITE, TASKS

import lrkit
from lrkit.sweeps import Store
from lrkit.tasks import Task
from lrkit.tasks._task import OPTIMIZERS

PRODIGY = "prodigy"
SCHEDULE_FREE = {"sgd": "schedulefree_sgd"}  # every other task: the AdamW variant
SCHEDULE_FREE_ADAMW = "schedulefree_adamw"
SF_DEFAULT_LR = {"schedulefree_sgd": 1.0, "schedulefree_adamw": 0.0025}


def plan(task: Task) -> list[tuple[str, str, str, float]]:
    """(label, optimizer, schedule, lr) of each peer run for ``task`` (Schedule-Free: its
    SGD variant on the SGD tasks, its AdamW one on the others, under one label)."""
    sf = SCHEDULE_FREE.get(task.optimizer, SCHEDULE_FREE_ADAMW)
    return [("Prodigy (constant, lr=1)", PRODIGY, "constant", 1.0),
            ("Prodigy (cosine, lr=1)", PRODIGY, "cosine", 1.0),
            ("Schedule-Free (defaults)", sf, "constant", SF_DEFAULT_LR[sf])]  # fmt: skip


def missing_names(task: Task) -> list[str]:
    return sorted({opt for _, opt, _, _ in plan(task) if opt not in OPTIMIZERS})


def store_of(name: str) -> Store:
    return Store(RESULTS / "suggest-peers" / name)


def train_all(names: list[str]) -> None:
    for name in names:
        task = TASKS[name]()
        absent = missing_names(task)
        if absent:
            print(f"{name}: peers skipped, lrkit has no optimizer named {', '.join(absent)}")
            continue
        for _, opt, schedule, lr in plan(task):
            pinned = f"{opt}@default"  # the sweep runs it at its documented default LR
            lrkit.sweep(task_path(name), lrs=[lr], schedules=(schedule,), optimizers=(pinned,),
                        seeds=SEEDS, epochs=task.epochs, store=RESULTS / "suggest-peers" / name,
                        name=f"{name}-{opt}-{schedule}", executor="serial",
                        progress=False, report=False)  # fmt: skip
        print(f"{name}: peers trained", flush=True)


def load(name: str, task: Task) -> dict[str, dict[int, float]]:
    """{peer label: {seed: final metric (NaN if diverged)}} of the runs stored so far."""
    path = RESULTS / "suggest-peers" / name
    if not (path / "lrkit.db").exists():
        return {}
    labels = {(opt, schedule, lr): label for label, opt, schedule, lr in plan(task)}
    out: dict[str, dict[int, float]] = {}
    for r in store_of(name).runs():
        c = r.config
        label = labels.get((c["optimizer"], c["schedule"], c["lr"]))
        if label is None or r.status != "done":
            continue
        value = math.nan if r.diverged else float(r.summary["final"][task.metric])
        out.setdefault(label, {})[c["seed"]] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(SUITE), help="comma-separated task names")
    train_all(parser.parse_args().tasks.split(","))


if __name__ == "__main__":
    main()
