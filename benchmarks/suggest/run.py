"""Run the suggestion-quality benchmark: oracle, range tests, peers, held-out scores, report.

    make bench-suggest        # = .venv/bin/python -m benchmarks.suggest.run

Steps, each cached and resumable (a rerun does only what is missing):

1. **Oracle** (``benchmarks.suggest.oracle``): each task at 9 half-decade LRs × seeds 0-3 ×
   {constant, one_cycle (LR = max LR), warmup_cosine (LR = peak)}, in
   ``benchmarks/results/suggest/<task>/``.
2. **Range tests** (``benchmarks.suggest.curves``): lrkit's, Lightning's and
   torch-lr-finder's, once per task and seed, in ``benchmarks/results/suggest_curves.json``.
3. **LR-free peers** (``benchmarks.suggest.peers``): Prodigy and Schedule-Free at their
   documented defaults, trained at the task's budget (when lrkit knows their names).
4. **Scores** (offline): every lrkit rule is recomputed from the recorded curve; each
   suggested LR's outcome is read off the oracle (linear in log LR between trained LRs, see
   ``benchmarks.suggest.fit.Oracle``); a peer's trained run is scored directly. **Regret** =
   the seed's best grid LR − achieved, in % of the range from that best down to the
   untrained model (a run worse than not training, diverged or not, counts as untrained),
   averaged over seeds per task. lrkit's default suggestion is ``auto`` × the schedule's
   factor: the shipped factor (fitted on this suite: in-sample) and the factor fitted on
   the other tasks only (leave-one-task-out: **held out**, the headline).

5. **Exact LRs** (``benchmarks.suggest.exact``): the LRs of lrkit's held-out suggestion are
   trained into the oracle stores and the suite is scored again, so the headline is
   measured, not interpolated.

Writes ``benchmarks/results/suggest.{json,md,png}`` and ``docs/data/suggest_summary.json``
(what the docs build plots).

    .venv/bin/python -m benchmarks.suggest.run [--tasks a,b] [--score-only]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from benchmarks.suggest.fit import (
    DISAGREEMENTS,
    NOISE_HEADS,
    Oracle,
    auto_at,
    fit,
    fit_thresholds,
    load_oracle,
)
from benchmarks.suggest.paths import NOISE_FLOOR, PROTOCOLS, RESULTS, SEEDS
from benchmarks.suggest.tasks import DEFAULT_LR, GRIDS, SUITE, TASKS, TRANSFORMERS

from lrkit.finder.result import FinderResult
from lrkit.suggest import SCHEDULE_FACTORS, summarize
from lrkit.tasks import Task
from lrkit.train import METRICS

SUMMARY = Path("docs/data/suggest_summary.json")
DEFAULT = "lrkit suggestion (held out)"
SHIPPED = "lrkit suggestion (shipped factors)"


def untrained(task: Task, seed: int) -> float:
    """The metric of the model as built, before any training: the floor of the range."""
    model, total, count = task.make_model(seed).eval(), 0.0, 0
    with torch.no_grad():
        for x, y in task.val_loader():
            total += float(METRICS[task.metric](model(x), y))
            count += len(y)
    return total / count


def shipped_factor(protocol: str) -> float:
    """lrkit's factor for ``protocol``; warmup_cosine reads cosine's when lrkit has none."""
    return SCHEDULE_FACTORS.get(protocol, SCHEDULE_FACTORS["cosine"])


@dataclass
class Suite:
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    oracles: dict[str, Oracle] = field(default_factory=dict)
    grid_oracles: dict[str, Oracle] = field(default_factory=dict)
    auto: dict[str, dict[int, float | None]] = field(default_factory=dict)
    records: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)


def rules_of(record: dict[str, Any]) -> dict[str, float | None]:
    """Every rule's LR for one task × seed, lrkit's recomputed from its recorded curve."""
    res = FinderResult.from_dict(record["lrkit"])
    out: dict[str, float | None] = {
        f"lrkit {k}": v for k, v in summarize(res.curves).suggestions.items()
    }
    out["lightning"] = record["lightning"]["suggestion"]
    out["torch-lr-finder"] = record["torch-lr-finder"]["suggestion"]
    return out


def load_suite(names: list[str]) -> Suite:
    curves = json.loads((RESULTS / "suggest_curves.json").read_text())
    suite = Suite()
    for name in names:
        task = TASKS[name]()
        grid = GRIDS["sgd" if task.optimizer == "sgd" else "adam"]
        floors = {seed: untrained(task, seed) for seed in SEEDS}
        rules = {seed: rules_of(curves[f"{name}|{seed}"]) for seed in SEEDS}
        for seed in SEEDS:
            rules[seed]["fixed default"] = DEFAULT_LR[task.optimizer]
        suite.oracles[name] = load_oracle(name, task.metric, task.optimizer, grid, floors)
        suite.grid_oracles[name] = load_oracle(name, task.metric, task.optimizer, grid, floors,
                                               grid_only=True)  # fmt: skip
        suite.auto[name] = {seed: rules[seed]["lrkit auto"] for seed in SEEDS}
        suite.records[name] = {seed: curves[f"{name}|{seed}"]["lrkit"] for seed in SEEDS}
        passes = FinderResult.from_dict(curves[f"{name}|0"]["lrkit"]).data_passes
        suite.tasks[name] = {"metric": task.metric, "optimizer": task.optimizer, "grid": grid,
                             "untrained": floors, "rules": rules, "data_passes": passes,
                             "peers": peer_runs(name, task)}  # fmt: skip
    return suite


def peer_runs(name: str, task: Task) -> dict[str, dict[int, float]]:
    """{peer: {seed: metric}} of the LR-free optimizers' runs (empty until they ran)."""
    from benchmarks.suggest.peers import load

    return load(name, task)


def score(suite: Suite) -> dict[str, Any]:
    """Rows (task, protocol, seed, rule, LR, regret %) and the fitted factors."""
    # fitted on the grid alone: the exact LRs trained for the suggestion must not move it
    fitted = fit(suite.grid_oracles, suite.auto)
    autos = {(h, d): auto_at(suite.records, (h, d)) for h in NOISE_HEADS for d in DISAGREEMENTS}
    joint = fit_thresholds(suite.grid_oracles, autos)
    rows = []
    for name, t in suite.tasks.items():
        oracle = suite.oracles[name]
        for protocol in PROTOCOLS:
            setting = joint["held_out"][name]  # auto's thresholds and factor fitted without it
            held = 10 ** joint["fits"][setting][protocol]["held_out"][name]
            for seed in SEEDS:
                picks = dict(t["rules"][seed])
                auto = picks["lrkit auto"]
                own = autos[setting][name][seed]
                picks[DEFAULT] = own and own * held
                picks[SHIPPED] = auto and auto * shipped_factor(protocol)
                for rule, lr in picks.items():
                    exact = lr is not None and oracle.trained(protocol, seed, lr)
                    rows.append({"task": name, "protocol": protocol, "seed": seed, "rule": rule,
                                 "lr": lr, "how": "trained" if exact else "oracle interpolation",
                                 "regret": oracle.regret(protocol, seed, lr)})  # fmt: skip
                floor_lr = suite.grid_oracles[name].other_seeds_best(protocol, seed)
                rows.append({"task": name, "protocol": protocol, "seed": seed,
                             "rule": NOISE_FLOOR, "lr": floor_lr, "how": "trained",
                             "regret": oracle.regret(protocol, seed, floor_lr)})  # fmt: skip
                for peer, runs in t["peers"].items():
                    if seed in runs:
                        rows.append({"task": name, "protocol": protocol, "seed": seed,
                                     "rule": peer, "lr": None, "how": "trained",
                                     "regret": oracle.regret_of(protocol, seed, runs[seed],
                                                                t["untrained"][seed])})  # fmt: skip
    held_factors = {p: {k: 10 ** joint["fits"][s][p]["held_out"][k]
                        for k, s in joint["held_out"].items()} for p in PROTOCOLS}  # fmt: skip
    inside = joint["fits"][joint["in_sample"]]
    return {"rows": rows, "factors": {p: {"in_sample": 10 ** r["in_sample"],
                                          "held_out": held_factors[p]}
                                      for p, r in inside.items()},
            "thresholds": {"in_sample": list(joint["in_sample"]),
                           "held_out": {k: list(v) for k, v in joint["held_out"].items()}},
            "shipped_fit": {p: 10 ** r["in_sample"] for p, r in fitted.items()}}  # fmt: skip


def task_means(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{protocol: {rule: {task: mean regret % over seeds}}}."""
    acc: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        acc.setdefault((r["protocol"], r["rule"], r["task"]), []).append(r["regret"])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (protocol, rule, task), values in acc.items():
        out.setdefault(protocol, {}).setdefault(rule, {})[task] = statistics.fmean(values)
    return out


def summarize_rules(means: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """{protocol: {rule: median, worst, worst_task, transformers_worst, tasks}}."""
    out: dict[str, Any] = {}
    for protocol, rules in means.items():
        out[protocol] = {}
        for rule, per_task in rules.items():
            values = list(per_task.values())
            tf = [v for k, v in per_task.items() if k in TRANSFORMERS]
            out[protocol][rule] = {
                "median": statistics.median(values), "worst": max(values),
                "worst_task": max(per_task, key=lambda k: per_task[k]),
                "transformers_worst": max(tf) if tf else math.nan, "tasks": len(values),
            }  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(SUITE), help="comma-separated task names")
    parser.add_argument("--score-only", action="store_true",
                        help="score what is stored; train and record nothing")  # fmt: skip
    args = parser.parse_args()
    names = args.tasks.split(",")
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    from benchmarks.suggest import curves, oracle, peers

    curves.quiet()
    if not args.score_only:
        for name in names:
            oracle.train(name, oracle.grid_of(TASKS[name]().optimizer))
        curves.record(names)
        peers.train_all(names)
    results = evaluate(names)
    if not args.score_only:  # measure the headline: train its exact LRs, then score again
        from benchmarks.suggest.exact import train_exact

        train_exact(names)
        results = evaluate(names)
    from benchmarks.suggest.report import write

    write(results, RESULTS, SUMMARY)


def evaluate(names: list[str]) -> dict[str, Any]:
    """Score the stored suite and write ``benchmarks/results/suggest.json``."""
    suite = load_suite(names)
    scored = score(suite)
    means = task_means(scored["rows"])
    results = {"seeds": len(SEEDS), "tasks": names, "transformers": list(TRANSFORMERS),
               "factors": scored["factors"], "thresholds": scored["thresholds"], "means": means,
               "summary": summarize_rules(means), "rows": scored["rows"],
               "data_passes": {k: t["data_passes"] for k, t in suite.tasks.items()}}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "suggest.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
