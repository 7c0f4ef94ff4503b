"""Train the exact LRs lrkit's held-out suggestion picked, so its headline is measured.

    nice -n 19 .venv/bin/python -m benchmarks.suggest.exact [--tasks a,b]

Reads ``benchmarks/results/suggest.json`` (``run.py`` first), and trains, for each task,
protocol and seed, the LR of ``lrkit suggestion (held out)`` into the task's oracle store
(cached: a run already there is skipped). The next ``run.py --score-only`` reads those runs
instead of interpolating (``how`` = trained); the factors stay fitted on the grid alone.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.suggest.oracle import done, task_path
from benchmarks.suggest.paths import RESULTS
from benchmarks.suggest.report import HEADLINE
from benchmarks.suggest.tasks import SUITE, TASKS

import lrkit


def train_exact(names: list[str], rule: str = HEADLINE) -> None:
    """Train every LR ``rule`` picked on ``names`` (as scored in ``suggest.json``)."""
    rows = json.loads((RESULTS / "suggest.json").read_text())["rows"]
    for name in names:
        task = TASKS[name]()
        held = done(name)
        for r in rows:
            if r["task"] != name or r["rule"] != rule or r["lr"] is None:
                continue
            if (r["protocol"], r["lr"], task.optimizer, r["seed"]) in held:
                continue
            lrkit.sweep(task_path(name), lrs=[r["lr"]], schedules=(r["protocol"],),
                        optimizers=(task.optimizer,), seeds=(r["seed"],), epochs=task.epochs,
                        store=RESULTS / "suggest" / name, name=f"{name}-exact",
                        progress=False, report=False)  # fmt: skip
        print(f"{name}: exact LRs trained", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(SUITE), help="comma-separated task names")
    parser.add_argument("--rule", default=HEADLINE, help="the rule whose LRs to train")
    args = parser.parse_args()
    train_exact(args.tasks.split(","), args.rule)


if __name__ == "__main__":
    main()
