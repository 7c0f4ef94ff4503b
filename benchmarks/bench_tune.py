"""Regret and cost of ``lrkit.tune`` against the full grid, Optuna TPE and the finder alone.

    nice -n 19 .venv/bin/python -m benchmarks.bench_tune --tasks cancer-mlp-bn,diabetes-mlp \\
        --seeds 0,1 --protocols constant,one_cycle

The oracle (13 LRs × seeds × protocol) is read from ``benchmarks/results/suggest/<task>/``
through ``benchmarks.suggest.run.train`` (which trains only what the store lacks). Regret is
on the suggestion benchmark's scale: (that seed's best grid metric − achieved) as % of the
range from the best down to the untrained model. The LR a method picks is scored by training
it once more at the full budget with that seed (stored beside the oracle). Cost: full-budget
run-equivalents (tune's ``cost``; K for Optuna; 13 for the grid) and wall seconds. Results
are cached in ``benchmarks/results/tune.json``; the plot goes to
``benchmarks/results/tune.png`` (not committed). Prodigy is left out until its optimizer name
is in lrkit.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from benchmarks.suggest.run import HIGHER_IS_BETTER, capped, train, untrained
from benchmarks.suggest.tasks import GRIDS, TASKS

import lrkit
from lrkit.tasks import Task

OUT = Path("benchmarks/results/tune.json")


def regret_pct(task: Task, grid_values: list[float], floor: float, value: float) -> float:
    sign = 1 if task.metric in HIGHER_IS_BETTER else -1
    best = max(grid_values, key=lambda v: sign * v)
    span = abs(best - floor) or 1.0
    return 100 * sign * (best - capped(value, floor, sign)) / span


def optuna_pick(task: Task, name: str, protocol: str, seed: int, n: int, lo: float,
                hi: float) -> float:  # fmt: skip
    """TPE over log LR in [lo, hi] with ``n`` full-budget trials; the best trial's LR."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sign = 1 if task.metric in HIGHER_IS_BETTER else -1

    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", lo, hi, log=True)
        got = train(task, name, [lr], seeds=(seed,))
        value = got[(protocol, lr, seed)]
        return sign * value if math.isfinite(value) else -math.inf

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))  # fmt: skip
    study.optimize(objective, n_trials=n)
    return float(study.best_params["lr"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="cancer-mlp-bn,diabetes-mlp,digits-mlp-sgd")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--protocols", default="constant,one_cycle")
    parser.add_argument("--ks", default="3,5,7")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    cache: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in args.tasks.split(","):
        task = TASKS[name]()
        grid = GRIDS["sgd" if task.optimizer == "sgd" else "adam"]
        for protocol in args.protocols.split(","):
            for seed in seeds:
                key = f"{name}|{protocol}|{seed}"
                if key in cache:
                    continue
                started = time.perf_counter()
                oracle = train(task, name, grid, seeds=(seed,))
                grid_wall = time.perf_counter() - started
                values = [oracle[(protocol if protocol != "warmup_cosine" else "cosine", lr,
                                  seed)] for lr in grid]  # fmt: skip
                floor = untrained(task, seed)
                sign = 1 if task.metric in HIGHER_IS_BETTER else -1
                rows: dict[str, dict[str, float]] = {
                    "grid (13)": {"regret": 0.0, "cost": 13.0, "wall_s": grid_wall}
                }
                model = task.make_model(seed)
                res = lrkit.find_lr(model, task.make_optimizer(model), task.train_loader(seed),
                                    task.criterion, seed=seed, progress=False)  # fmt: skip
                lr = res.suggestion_for("cosine" if protocol == "warmup_cosine" else protocol)
                got = (
                    train(task, name, [lr], seeds=(seed,))[(protocol, lr, seed)] if lr else math.nan
                )
                rows["finder alone"] = {"regret": regret_pct(task, values, floor, got),
                                        "cost": 100 / (task.epochs * task.steps_per_epoch),
                                        "wall_s": 0.0}  # fmt: skip
                for k in (int(x) for x in args.ks.split(",")):
                    for prune in (True, False):
                        t0 = time.perf_counter()
                        tuned = lrkit.tune(task, schedule=protocol, seeds=(seed,), k=k,
                                           prune=prune, progress=False)  # fmt: skip
                        wall = time.perf_counter() - t0
                        value = tuned.mean_metric(tuned.lr) if tuned.lr is not None else None
                        rows[f"tune K={k}{'' if prune else ' no-prune'}"] = {
                            "regret": regret_pct(task, values, floor,
                                                 math.nan if value is None else value),
                            "cost": tuned.cost, "wall_s": wall,
                        }  # fmt: skip
                        if k == 5 and prune:
                            n = max(1, round(tuned.cost))
                            pick = optuna_pick(task, name, protocol, seed, n, grid[0], grid[-1])
                            got = train(task, name, [pick], seeds=(seed,))[(protocol, pick, seed)]
                            rows[f"optuna TPE (n={n})"] = {
                                "regret": regret_pct(task, values, floor, got), "cost": n,
                                "wall_s": 0.0,
                            }  # fmt: skip
                cache[key] = rows
                del sign
                OUT.parent.mkdir(parents=True, exist_ok=True)
                OUT.write_text(json.dumps(cache, indent=1))
                print(key, {m: round(r["regret"], 2) for m, r in rows.items()}, flush=True)
    table(cache)


def table(cache: dict[str, Any]) -> None:
    methods = sorted({m for rows in cache.values() for m in rows})
    print(f"{'method':24} {'median regret %':>16} {'worst %':>8} {'mean cost':>10}")
    points = []
    for m in methods:
        regrets = sorted(r[m]["regret"] for r in cache.values() if m in r)
        costs = [r[m]["cost"] for r in cache.values() if m in r]
        median = regrets[len(regrets) // 2]
        cost = sum(costs) / len(costs)
        points.append((m, cost, median))
        print(f"{m:24} {median:16.2f} {regrets[-1]:8.2f} {cost:10.2f}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for m, cost, median in points:
        ax.scatter(cost, median)
        ax.annotate(m, (cost, median), fontsize=7)
    ax.set_xlabel("cost (full-budget run-equivalents)")
    ax.set_ylabel("median regret (% of range)")
    fig.savefig(OUT.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
