"""Fit the schedule factors of lrkit's suggestion on the suite, and test them on held-out tasks.

    make bench-suggest                          # first: oracle, suggestions, suggest.json
    .venv/bin/python -m benchmarks.suggest.fit  # then: benchmarks/results/suggest_fit.md

For each protocol, the candidate suggestion is ``auto``'s LR × f, for f on a 0.025-decade
grid. Its regret on each task and seed is read off that seed's oracle (the 13 grid LRs, the
quarter-decade points around the best and every LR a rule suggested; linear in log LR
between them, capped at the untrained model as in ``run.py``), in % of the range, averaged
over seeds. **In-sample**: the f with the lowest mean regret over all tasks. **Held out**:
for each task, f fitted on the other tasks only and scored on it (leave-one-task-out) — what
a new task can expect, since the factors are never fitted on the task they are used on.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import numpy as np
from benchmarks.suggest.run import HIGHER_IS_BETTER, PROTOCOLS, RESULTS, SEEDS, capped

from lrkit.suggest import SCHEDULE_FACTORS
from lrkit.sweeps import Store

LOG_FACTORS = [round(-0.6 + 0.025 * i, 3) for i in range(41)]  # f from 0.25 to 4


class Oracle:
    """One task's outcome at any LR, per protocol and seed, as % regret."""

    def __init__(self, name: str, task: dict[str, Any]) -> None:
        self.sign = 1 if task["metric"] in HIGHER_IS_BETTER else -1
        points: dict[tuple[str, int], dict[float, float]] = {}
        for r in Store(RESULTS / "suggest" / name).runs(name):
            c = r.config
            ok = r.status == "done" and not r.diverged
            value = float(r.summary["final"][task["metric"]]) if ok else math.nan
            points.setdefault((c["schedule"], c["seed"]), {})[c["lr"]] = value
        self.curves: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, float, float]] = {}
        for (protocol, seed), found in points.items():
            floor = task["untrained"][str(seed)]
            lrs = sorted(found)
            y = np.array([self._scored(found[lr], floor) for lr in lrs])
            best = max(self._scored(found[lr], floor) for lr in task["grid"])
            self.curves[protocol, seed] = (np.log10(lrs), y, best, self.sign * floor)

    def _scored(self, value: float, floor: float) -> float:
        """``value`` capped at the untrained model, signed so that higher is better."""
        return self.sign * capped(value, floor, self.sign)

    def regret(self, protocol: str, seed: int, lr: float | None) -> float:
        logx, y, best, floor = self.curves[protocol, seed]
        achieved = floor if lr is None else float(np.interp(math.log10(lr), logx, y))
        return 100 * (best - achieved) / ((best - floor) or 1.0)


def table(results: dict[str, Any], protocol: str) -> dict[float, dict[str, float]]:
    """{log10 f: {task: mean regret % over seeds of auto × f}}."""
    out: dict[float, dict[str, float]] = {}
    oracles = {name: Oracle(name, task) for name, task in results["tasks"].items()}
    for log_f in LOG_FACTORS:
        out[log_f] = {}
        for name, task in results["tasks"].items():
            regrets = []
            for seed in SEEDS:
                lr = task["suggestions"][str(seed)]["lrkit auto"]
                regrets.append(oracles[name].regret(protocol, seed, lr and lr * 10**log_f))
            out[log_f][name] = statistics.fmean(regrets)
    return out


def fit(results: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for protocol in PROTOCOLS:
        t = table(results, protocol)
        tasks = list(results["tasks"])
        in_sample = min(t, key=lambda f: statistics.fmean(t[f].values()))
        held: dict[str, tuple[float, float]] = {}
        for name in tasks:
            f = min(t, key=lambda f: statistics.fmean(v for k, v in t[f].items() if k != name))
            held[name] = (f, t[f][name])
        current = min(t, key=lambda f: abs(10**f - SCHEDULE_FACTORS[protocol]))
        report[protocol] = {"table": t, "in_sample": in_sample, "held_out": held,
                            "current": current}  # fmt: skip
    return report


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}%, worst {max(values):.2f}%"


def write(report: dict[str, Any]) -> str:
    lines = ["# Schedule factors: fitted on the suite, scored on held-out tasks", ""]
    for protocol, r in report.items():
        t, f = r["table"], r["in_sample"]
        held = r["held_out"]
        lines += [f"## {protocol}", "",
                  f"- in-sample best factor {10**f:.2f}: {summary(list(t[f].values()))}",
                  f"- leave-one-task-out: {summary([v for _, v in held.values()])} "
                  f"(factors {min(10**g for g, _ in held.values()):.2f}–"
                  f"{max(10**g for g, _ in held.values()):.2f})",
                  f"- lrkit's factor {SCHEDULE_FACTORS[protocol]}: "
                  f"{summary(list(t[r['current']].values()))}", "",
                  "| factor | mean | median | worst | " + " | ".join(t[f]) + " |",
                  "| --- | --- | --- | --- |" + " --- |" * len(t[f])]  # fmt: skip
        for g in LOG_FACTORS[::4]:
            v = list(t[g].values())
            lines.append(f"| {10**g:.2f} | {statistics.fmean(v):.2f} | "
                         f"{statistics.median(v):.2f} | {max(v):.2f} | "
                         + " | ".join(f"{x:.1f}" for x in v) + " |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    results = json.loads((RESULTS / "suggest.json").read_text())
    text = write(fit(results))
    (RESULTS / "suggest_fit.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
