"""Regret and cost of ``lrkit.tune`` against the full grid, Optuna TPE, Prodigy and the finder.

    nice -n 19 .venv/bin/python -m benchmarks.bench_tune --tasks all --seeds 0 \\
        --protocols constant,one_cycle,warmup_cosine      # and --seeds 1 in parallel
    .venv/bin/python -m benchmarks.bench_tune --table     # merge, table, plot

``--methods`` picks which of ``TUNES`` (tune settings) and Optuna run; a cell's cached
results are kept, and only the methods it lacks, or ran under another pruning rule
(``lrkit.tuning.prune.RULE``), are trained; Optuna reruns when tune K=5's run count moved.

Scored against the suggestion suite's oracle (``benchmarks.suggest``: run it first; its store
is only read here, never trained into). Regret is the suite's: (that seed's best grid metric −
achieved) as % of the range from that best down to the untrained model, a diverged or worse
run counting as untrained (``benchmarks.suggest.fit.Oracle``). What each method achieved:

- ``tune``: the seed's trained metric of the LR tune chose (tune trains it at the full budget);
  cost = tune's ``cost`` (range test + candidates, pruned ones for the part they ran).
- ``finder alone``: the suite's ``lrkit suggestion (held out)`` rows (from
  ``benchmarks/results/suggest.json``); cost = the range test's data passes / epochs.
- ``grid (9)``: regret 0 by definition; cost 9 runs.
- ``optuna TPE``: log-LR over the grid's span, as many full-budget trials as tune K=5 cost
  (rounded up), each trained with ``lrkit.sweep`` into ``benchmarks/results/tune/<task>``;
  its best trial's trained metric is scored.
- ``Prodigy``: the suite's peer rows (Prodigy, constant, lr=1), when present.

Per (task, protocol, seed) results are cached in ``benchmarks/results/tune-s<seeds>.json``
(one file per ``--seeds`` so that processes can split the seeds); ``--table`` merges them,
prints the table, the pruning and interval checks, and writes ``benchmarks/results/tune.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from benchmarks.suggest.fit import Oracle, load_oracle
from benchmarks.suggest.oracle import grid_of, task_path
from benchmarks.suggest.paths import RESULTS, SEEDS
from benchmarks.suggest.run import DEFAULT, untrained
from benchmarks.suggest.tasks import SUITE, TASKS

import lrkit
from lrkit.sweeps import Store
from lrkit.tuning.prune import RULE

PRODIGY = "Prodigy (constant, lr=1)"
OPTUNA_STORE = RESULTS / "tune"


def optuna_run(name: str, protocol: str, seed: int, n: int, lo: float, hi: float,
               oracle: Oracle, floor: float) -> tuple[float, float, float]:  # fmt: skip
    """TPE over log LR in [lo, hi], ``n`` full-budget trials: (best LR, regret %, wall s)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = TASKS[name]()
    store = OPTUNA_STORE / name
    values: dict[float, float] = {}

    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", lo, hi, log=True)
        lrkit.sweep(task_path(name), lrs=[lr], schedules=(protocol,),
                    optimizers=(task.optimizer,), seeds=(seed,), epochs=task.epochs,
                    store=store, name=f"optuna-{name}", executor="serial", progress=False,
                    report=False)  # fmt: skip
        for r in Store(store).runs():
            c = r.config
            if (c["lr"], c["schedule"], c["seed"]) == (lr, protocol, seed) and r.status == "done":
                values[lr] = math.nan if r.diverged else float(r.summary["final"][task.metric])
        return -oracle.regret_of(protocol, seed, values[lr], floor)

    started = time.perf_counter()
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))  # fmt: skip
    study.optimize(objective, n_trials=n)
    lr = float(study.best_params["lr"])
    return lr, -float(study.best_value), time.perf_counter() - started


TUNES: dict[str, dict[str, Any]] = {
    "tune K=3": {"k": 3},
    "tune K=5": {"k": 5},
    "tune K=7": {"k": 7},
    "tune K=5 no-prune": {"k": 5, "prune": False},
    "tune K=5 finder_runs=3": {"k": 5, "finder_runs": 3},
    "tune K=5 finder_runs=1": {"k": 5, "finder_runs": 1},
    "tune K=5 rounds=2": {"k": 5, "rounds": 2},
}
"""The ``lrkit.tune`` settings measured (defaults otherwise)."""
OPTUNA = "optuna TPE (= tune K=5 runs)"


def run_one(name: str, protocol: str, seed: int, methods: list[str],
            suite: dict[str, Any],
            rows: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Fill ``rows`` (one cell's cached results) with the ``methods`` it lacks."""
    task = TASKS[name]()
    grid = grid_of(task.optimizer)
    floors = {s: untrained(task, s) for s in SEEDS}
    floor = floors[seed]
    oracle = load_oracle(name, task.metric, task.optimizer, grid, floors, grid_only=True)
    curve = oracle.curves[protocol, seed]
    rows["oracle"] = {"best_lr": float(10 ** curve[0][int(curve[1].argmax())]),
                      "epochs": task.epochs}  # fmt: skip
    rows["grid (9)"] = {"regret": 0.0, "cost": float(len(grid))}
    for r in suite["rows"]:
        if (r["task"], r["protocol"], r["seed"]) == (name, protocol, seed):
            if r["rule"] == DEFAULT:
                passes = suite["data_passes"][name]
                rows["finder alone"] = {"regret": r["regret"], "cost": passes / task.epochs,
                                        "lr": r["lr"]}  # fmt: skip
            elif r["rule"] == PRODIGY:
                rows["Prodigy (default)"] = {"regret": r["regret"], "cost": 1.0}
    for method in (m for m in methods if m in TUNES and rows.get(m, {}).get("rule") != RULE):
        t0 = time.perf_counter()
        res = lrkit.tune(task, schedule=protocol, seeds=(seed,), progress=False,
                         **TUNES[method])  # fmt: skip
        wall = time.perf_counter() - t0
        value = res.mean_metric(res.lr) if res.lr is not None else None
        regret = oracle.regret_of(protocol, seed, math.nan if value is None else value, floor)
        rows[method] = {
            "regret": regret, "cost": res.cost, "wall_s": wall, "lr": res.lr, "rule": RULE,
            "interval": list(res.interval), "finder_runs": res.finder.runs,
            "candidates": [{"lr": c.lr, "metric": c.metric, "stopped_at": c.stopped_at,
                            "pruned": c.pruned, "diverged": c.diverged}
                           for c in res.candidates],
        }  # fmt: skip
        print(f"  {name} {protocol} s{seed} {method}: regret {regret:.2f}% cost {res.cost:.2f} "
              f"wall {wall:.0f}s", flush=True)  # fmt: skip
    if OPTUNA in methods and "tune K=5" in rows:
        n = math.ceil(rows["tune K=5"]["cost"])
        if rows.get(OPTUNA, {}).get("n") != n:
            lr, regret, wall = optuna_run(name, protocol, seed, n, grid[0], grid[-1], oracle,
                                          floor)  # fmt: skip
            rows[OPTUNA] = {"regret": regret, "cost": float(n), "wall_s": wall, "lr": lr, "n": n}
    return rows


def table(paths: list[Path]) -> str:
    cache: dict[str, Any] = {}
    for p in paths:
        cache.update(json.loads(p.read_text()))
    methods = ["finder alone", *TUNES, OPTUNA, "Prodigy (default)", "grid (9)"]
    protocols = sorted({k.split("|")[1] for k in cache})
    out = [f"{len(cache)} (task, protocol, seed) cells: "
           f"{len({k.split('|')[0] for k in cache})} tasks × {protocols} × "
           f"{len({k.split('|')[2] for k in cache})} seeds", "",
           "| method | protocol | median regret % | worst % | task means (seeds averaged): "
           "median / worst | LR read off the grid oracle: median / worst | mean cost (runs) "
           "| mean wall s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    oracles = {}
    for name in {k.split("|")[0] for k in cache}:
        task = TASKS[name]()
        floors = {s: untrained(task, s) for s in SEEDS}
        oracles[name] = load_oracle(name, task.metric, task.optimizer, grid_of(task.optimizer),
                                    floors, grid_only=True)  # fmt: skip
    for key, v in cache.items():  # the picked LR read off the grid oracle, as the suite does
        name, protocol, seed = key.split("|")
        for m in [*TUNES, OPTUNA]:
            if m in v:
                v[m]["interp"] = oracles[name].regret(protocol, int(seed), v[m]["lr"])
    points = []
    for m in methods:
        for protocol in [*protocols, "all"]:
            cells = [v[m] for k, v in cache.items() if m in v
                     and (protocol == "all" or k.split("|")[1] == protocol)]  # fmt: skip
            if not cells:
                continue
            regrets = [c["regret"] for c in cells]
            cost = statistics.fmean(c["cost"] for c in cells)
            walls = [c["wall_s"] for c in cells if "wall_s" in c]
            wall = f"{statistics.fmean(walls):.0f}" if walls else "–"
            per_task: dict[str, list[float]] = {}
            for k, v in cache.items():
                if m in v and (protocol == "all" or k.split("|")[1] == protocol):
                    per_task.setdefault(k.split("|")[0], []).append(v[m]["regret"])
            means = [statistics.fmean(r) for r in per_task.values()]
            suite = f"{statistics.median(means):.2f} / {max(means):.2f}"
            interp = [c["interp"] for c in cells if "interp" in c]
            read = f"{statistics.median(interp):.2f} / {max(interp):.2f}" if interp else "–"
            out.append(f"| {m} | {protocol} | {statistics.median(regrets):.2f} | "
                       f"{max(regrets):.2f} | {suite} | {read} | {cost:.2f} | "
                       f"{wall} |")  # fmt: skip
            if protocol == "all":
                points.append((m, cost, statistics.median(regrets), max(regrets)))
    # pruning: same candidates with and without it
    both = [v for v in cache.values() if "tune K=5" in v and "tune K=5 no-prune" in v]
    if both:
        same = sum(v["tune K=5"]["lr"] == v["tune K=5 no-prune"]["lr"] for v in both)
        dropped = sum(v["tune K=5 no-prune"]["lr"] in {c["lr"] for c in v["tune K=5"]["candidates"]
                                                       if c["pruned"]} for v in both)  # fmt: skip
        saved = [v["tune K=5 no-prune"]["cost"] - v["tune K=5"]["cost"] for v in both]
        out += [
            "",
            f"Pruning (K=5, same candidates): same pick in {same}/{len(both)} cells; "
            f"the no-prune winner was pruned in {dropped}/{len(both)}; compute saved "
            f"{statistics.fmean(saved):.2f} runs on average (max {max(saved):.2f}).",
        ]
    inside = []
    for m in TUNES:
        cells = [v for v in cache.values() if m in v]
        if cells:
            hit = sum(v[m]["interval"][0] * 0.999 <= v["oracle"]["best_lr"]
                      <= v[m]["interval"][1] * 1.001 for v in cells)  # fmt: skip
            inside.append(f"{m}: {hit}/{len(cells)}")
    out.append("Interval contains the oracle's best grid LR: " + ", ".join(inside))
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for m, cost, median, worst in points:
        ax.scatter(cost, median, label=m)
        ax.vlines(cost, median, worst, alpha=0.3)
        ax.annotate(m, (cost, median), fontsize=7)
    ax.set_xlabel("cost (full-budget run-equivalents, mean)")
    ax.set_ylabel("regret, % of range (dot: median; line: to worst)")
    ax.set_yscale("symlog", linthresh=0.1)
    fig.savefig(RESULTS / "tune.png", dpi=120)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="linnerud-mlp,digits-gru,digits-mlp-adam,"
                        "finetune-lenet,digits-resnet-bn,digits-vit")  # fmt: skip
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--protocols", default="constant,one_cycle")
    parser.add_argument("--methods", default=",".join([*TUNES, OPTUNA]),
                        help="which of: " + ", ".join([*TUNES, OPTUNA]))  # fmt: skip
    parser.add_argument("--table", action="store_true", help="only merge caches and report")
    args = parser.parse_args()
    if not args.table:
        warnings.filterwarnings("ignore")
        torch.set_num_threads(1)
        out = RESULTS / f"tune-s{args.seeds.replace(',', '-')}.json"
        cache: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        suite = json.loads((RESULTS / "suggest.json").read_text())
        methods = args.methods.split(",")
        unknown = set(methods) - {*TUNES, OPTUNA}
        if unknown:
            parser.error(f"unknown methods {sorted(unknown)}")
        for name in SUITE if args.tasks == "all" else args.tasks.split(","):
            for protocol in args.protocols.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    key = f"{name}|{protocol}|{seed}"
                    cache[key] = run_one(name, protocol, seed, methods, suite,
                                         cache.get(key, {}))  # fmt: skip
                    out.write_text(json.dumps(cache, indent=1))
    text = table(sorted(RESULTS.glob("tune-s*.json")))
    print(text)
    (RESULTS / "tune.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
