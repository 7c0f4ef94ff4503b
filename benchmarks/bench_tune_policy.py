"""tune's pruning rule and K judged offline on the suggestion suite's grid runs.

    .venv/bin/python -m benchmarks.bench_tune_policy    # after benchmarks.suggest.run

Every grid run of the suite (16 tasks × 3 protocols × 4 seeds × 9 LRs half a decade apart)
stored its validation metric after each epoch, so a tune whose candidates sit on the grid
can be replayed exactly without training: the candidates are the K grid LRs around the
held-out suggestion (``lrkit suggestion (held out)`` in ``benchmarks/results/suggest.json``),
each rule stops candidates at its rungs from the stored metrics, the winner is the best
final metric among the survivors, and its regret is the suite's (that seed's best grid
metric − the winner's, % of the range down to the untrained model). Cost: the candidates'
epochs / the budget (the range test is not counted here).

A rule is rungs (fractions of the budget) × how many of the ranked candidates it keeps ×
guards (a 5% margin to the leader; the next LR above the leader, or both neighbours).
Held out: for each task, the rule with the lowest mean regret on the other 15 tasks among
those whose mean cost there fits a budget, scored on the task. Writes
``benchmarks/results/tune_policy.md``.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.suggest.fit import load_oracle
from benchmarks.suggest.oracle import grid_of
from benchmarks.suggest.paths import HIGHER_IS_BETTER, PROTOCOLS, RESULTS, SEEDS
from benchmarks.suggest.run import untrained
from benchmarks.suggest.tasks import TASKS

from lrkit.sweeps import Store
from lrkit.tuning.prune import to_stop as shipped_to_stop

HELD_OUT_RULE = "lrkit suggestion (held out)"
Keep = Callable[[int], int]
Stop = Callable[[Any], set[Any]]  # {candidate: error at a rung} -> the candidates to stop
Rule = tuple[tuple[float, ...], Stop]  # rungs (fractions of the budget), what they stop


def _half(n: int) -> int:
    return math.ceil(n / 2)


def _third(n: int) -> int:
    return math.ceil(n / 3)


def _floor_half(n: int) -> int:
    return max(1, n // 2)


def _top(k: int) -> Keep:
    return lambda n: k


def family_stop(errors: dict[int, float], keep: Keep, margin: float | None, sides: int) -> set[int]:
    """The candidates (grid indices) a rule of the family stops at a rung."""
    stop = {i for i, e in errors.items() if not math.isfinite(e)}
    alive = sorted((e, i) for i, e in errors.items() if math.isfinite(e))
    if len(alive) < 2:
        return stop
    best, leader = alive[0]
    kept = {i for _, i in alive[: keep(len(alive))]}
    if margin is not None:
        kept |= {i for e, i in alive if e - best <= margin * abs(best)}
    if sides >= 1:
        kept |= {min((i for _, i in alive if i > leader), default=leader)}
    if sides >= 2:
        kept |= {max((i for _, i in alive if i < leader), default=leader)}
    return stop | {i for _, i in alive if i not in kept}


def _rule(fractions: tuple[float, ...], keep: Keep, margin: float | None, sides: int) -> Rule:
    """A rule of the family: at each rung keep ``keep(n)`` of the ``n`` still running, those
    within ``margin`` of the leader, and its neighbour above (``sides`` 1) or both (2)."""
    return fractions, functools.partial(family_stop, keep=keep, margin=margin, sides=sides)


Q, H, T = (1 / 4, 1 / 2), (1 / 2,), (1 / 3, 2 / 3)
RULES: dict[str, Rule] = {
    "none": ((), lambda errors: set()),
    "1/3,2/3 half+5%+above (the rule before)": _rule(T, _half, 0.05, 1),
    "1/3,2/3 half+above": _rule(T, _half, None, 1),
    "1/3,2/3 half": _rule(T, _half, None, 0),
    "1/3,2/3 third+above": _rule(T, _third, None, 1),
    "1/3,2/3 top2+above": _rule(T, _top(2), None, 1),
    "1/3,2/3 top1+above": _rule(T, _top(1), None, 1),
    "1/3,2/3 top1+both": _rule(T, _top(1), None, 2),
    "1/3,2/3 top1": _rule(T, _top(1), None, 0),
    "1/3 top1+above": _rule((1 / 3,), _top(1), None, 1),
    "1/4,1/2 half+both (shipped)": (Q, shipped_to_stop),  # lrkit's own rule, not a copy
    "1/4,1/2 half+above": _rule(Q, _half, None, 1),
    "1/4,1/2 half+5%+above": _rule(Q, _half, 0.05, 1),
    "1/4,1/2 half": _rule(Q, _half, None, 0),
    "1/4,1/2 floor-half+above": _rule(Q, _floor_half, None, 1),
    "1/4,1/2 top2+above": _rule(Q, _top(2), None, 1),
    "1/4,1/2 top1+above": _rule(Q, _top(1), None, 1),
    "1/4,1/2,3/4 half+above": _rule((1 / 4, 1 / 2, 3 / 4), _half, None, 1),
    "1/4 half+above": _rule((1 / 4,), _half, None, 1),
    "1/2 half+above": _rule(H, _half, None, 1),
    "1/2 top1+above": _rule(H, _top(1), None, 1),
    "1/2 top1+both": _rule(H, _top(1), None, 2),
}


def cells() -> list[dict[str, Any]]:
    """One replayable cell per (task, protocol, seed): per-epoch errors of every grid LR."""
    suite = json.loads((RESULTS / "suggest.json").read_text())
    centre = {(r["task"], r["protocol"], r["seed"]): r["lr"] for r in suite["rows"]
              if r["rule"] == HELD_OUT_RULE}  # fmt: skip
    out = []
    for name in suite["tasks"]:
        task = TASKS[name]()
        grid = grid_of(task.optimizer)
        floors = {s: untrained(task, s) for s in SEEDS}
        oracle = load_oracle(name, task.metric, task.optimizer, grid, floors, grid_only=True)
        higher = task.metric in HIGHER_IS_BETTER
        store = Store(RESULTS / "suggest" / name, create=False)
        errors: dict[tuple[str, float, int], list[float]] = {}
        for r in store.runs():
            c = r.config
            if c["optimizer"] != task.optimizer or r.status != "done" or c["lr"] not in grid:
                continue
            values = store.metrics(r.id, "epoch").get(task.metric, [])
            err = [(1 - v if higher else v) if v is not None and math.isfinite(v) else math.inf
                   for v in values]  # fmt: skip
            errors[c["schedule"], c["lr"], c["seed"]] = err + ([math.inf] if r.diverged else [])
        for protocol in PROTOCOLS:
            for seed in SEEDS:
                lrs = [lr for lr in grid if (protocol, lr, seed) in errors]
                if (protocol, seed) not in oracle.curves or not lrs:
                    continue
                out.append({"task": name, "protocol": protocol, "epochs": task.epochs,
                            "lrs": lrs, "errors": [errors[protocol, lr, seed] for lr in lrs],
                            "regret": [oracle.regret(protocol, seed, lr) for lr in lrs],
                            "centre": centre.get((name, protocol, seed))})  # fmt: skip
    return out


def replay(cell: dict[str, Any], k: int, rule: Rule) -> tuple[float, float]:
    """(regret %, candidate cost in runs) of one tune on the grid."""
    fractions, stop = rule
    n, epochs, errs = len(cell["lrs"]), cell["epochs"], cell["errors"]
    if cell["centre"] is None:
        middle = n // 2
    else:
        log_c = math.log10(cell["centre"])
        middle = min(range(n), key=lambda i: abs(math.log10(cell["lrs"][i]) - log_c))
    first = max(0, min(middle - (k - 1) // 2, n - k))
    candidates = range(first, first + k)
    # a run that diverges stops at the end of that epoch (epochs + 1: never); until then it is
    # ranked like any
    diverged_at = {i: next((e + 1 for e, x in enumerate(errs[i]) if not math.isfinite(x)),
                           epochs + 1) for i in candidates}  # fmt: skip
    ran = {i: min(epochs, diverged_at[i]) for i in candidates}
    alive = set(candidates)
    for rung in sorted({e for e in (int(epochs * f) for f in fractions) if 1 <= e < epochs}):
        alive = {i for i in alive if diverged_at[i] >= rung}
        at = {i: errs[i][rung - 1] if len(errs[i]) >= rung else math.inf for i in alive}
        for i in stop(at):
            alive.discard(i)
            ran[i] = min(ran[i], rung)
    done = [i for i in alive if len(errs[i]) >= epochs and math.isfinite(errs[i][epochs - 1])]
    regret = cell["regret"][min(done, key=lambda i: errs[i][epochs - 1])] if done else 100.0
    return regret, sum(ran.values()) / epochs


def scores(all_cells: Sequence[dict[str, Any]], k: int) -> dict[str, dict[str, Any]]:
    """Per rule: task means of regret and cost (all protocols) and per-protocol summaries."""
    out: dict[str, dict[str, Any]] = {}
    for name, rule in RULES.items():
        regret: dict[str, list[float]] = defaultdict(list)
        cost: dict[str, list[float]] = defaultdict(list)
        by_protocol: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for cell in all_cells:
            r, c = replay(cell, k, rule)
            regret[cell["task"]].append(r)
            cost[cell["task"]].append(c)
            by_protocol[cell["protocol"]][cell["task"]].append(r)
        out[name] = {
            "regret": {t: statistics.fmean(v) for t, v in regret.items()},
            "cost": {t: statistics.fmean(v) for t, v in cost.items()},
            "protocols": {p: [statistics.fmean(v) for v in d.values()]
                          for p, d in by_protocol.items()},
        }  # fmt: skip
    return out


def held_out(table: dict[str, dict[str, Any]], budget: float) -> tuple[dict[str, float], float,
                                                                       dict[str, int]]:  # fmt: skip
    """Leave-one-task-out: each task scored with the rule that did best on the others within
    ``budget`` runs of candidate compute (there). (regret by task, mean cost, rules chosen)."""
    regret: dict[str, float] = {}
    costs: list[float] = []
    chosen: dict[str, int] = defaultdict(int)
    tasks = list(next(iter(table.values()))["regret"])
    for task in tasks:

        def others(name: str, key: str, task: str = task) -> float:
            return statistics.fmean(v for t, v in table[name][key].items() if t != task)

        fits = [n for n in table if n != "none" and others(n, "cost") <= budget]
        if not fits:
            continue
        best = min(fits, key=lambda n: (others(n, "regret"), others(n, "cost")))
        chosen[best] += 1
        regret[task] = table[best]["regret"][task]
        costs.append(table[best]["cost"][task])
    return regret, statistics.fmean(costs) if costs else math.nan, dict(chosen)


def main() -> None:
    all_cells = cells()
    lines = [f"{len(all_cells)} cells ({len({c['task'] for c in all_cells})} tasks × "
             f"{len(PROTOCOLS)} protocols × {len(SEEDS)} seeds), candidates on the grid "
             "(half a decade apart) around the held-out suggestion; regret % of range (task "
             "means over seeds), candidate cost in runs (range test not counted)."]  # fmt: skip
    for k in (3, 5, 7):
        table = scores(all_cells, k)
        lines += ["", f"### K = {k}", "",
                  "| rule | " + " | ".join(f"{p}: median / worst" for p in PROTOCOLS)
                  + " | all: mean / median / worst | cost |",
                  "| --- |" + " --- |" * (len(PROTOCOLS) + 2)]  # fmt: skip
        order = sorted(table, key=lambda n: statistics.fmean(table[n]["regret"].values()))
        for name in order:
            row = table[name]
            per = " | ".join(f"{statistics.median(row['protocols'][p]):.2f} / "
                             f"{max(row['protocols'][p]):.1f}" for p in PROTOCOLS)  # fmt: skip
            reg = list(row["regret"].values())
            lines.append(f"| {name} | {per} | {statistics.fmean(reg):.2f} / "
                         f"{statistics.median(reg):.2f} / {max(reg):.1f} | "
                         f"{statistics.fmean(row['cost'].values()):.2f} |")  # fmt: skip
        lines.append("")
        for budget in (k, k / 2 + 1, k / 2):
            regret, cost, chosen = held_out(table, budget)
            if not regret:
                lines.append(f"- held out, candidate cost ≤ {budget:g}: no rule fits")
                continue
            lines.append(f"- held out, candidate cost ≤ {budget:g}: median "
                         f"{statistics.median(regret.values()):.2f}, worst "
                         f"{max(regret.values()):.1f} ({max(regret, key=regret.__getitem__)}), "
                         f"cost {cost:.2f}; chosen: {chosen}")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    (RESULTS / "tune_policy.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
