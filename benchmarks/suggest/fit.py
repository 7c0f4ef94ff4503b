"""The oracle read at any LR, and the schedule factors fitted leave-one-task-out.

For each protocol, the candidate suggestion is ``auto``'s LR × f, for f on a 0.025-decade
grid. Its regret on each task and seed is read off that seed's oracle (every LR trained for
the task: the grid and any extra LR; linear in log LR between them, the end values beyond
them, capped at the untrained model), in % of the range, averaged over seeds. **In-sample**:
the f with the lowest mean regret over all tasks. **Held out**: for each task, f fitted on
the other tasks only and scored on it (leave-one-task-out) — what a new task can expect.

``auto``'s two guard thresholds (``noise_head``, ``max_disagreement``) are fitted the same
way, jointly with the factors (:func:`fit_thresholds`): ``auto`` is recomputed from every
recorded curve at each setting of a small grid; a setting's score is the mean regret over
the tasks and the three protocols, each protocol at its best factor. Held out, each task
gets the setting and the factors fitted on the other tasks.

    .venv/bin/python -m benchmarks.suggest.fit   # after benchmarks.suggest.run: factors only
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from benchmarks.suggest.paths import HIGHER_IS_BETTER, PROTOCOLS, RESULTS, SEEDS

from lrkit.sweeps import Store

# the thresholds as argued before any fit (lrkit 0.x, issue 14): ties go to the setting
# nearest them, never to the shipped constants (which are fitted on every task, so a held-out
# task would leak into its own tie-break)
PRIOR_SETTING = (0.1, 1.5)

LOG_FACTORS = [round(-0.6 + 0.025 * i, 3) for i in range(41)]  # f from 0.25 to 4
# 0.2-0.3 fit the suite better in-sample (worst 27% vs 82% at a constant LR) but move only
# linnerud-mlp (held out: no other task supports them), and 0.25 breaks the recorded ViT
# guard test in tests/test_suggest_recorded.py: not in the grid
NOISE_HEADS = (0.0, 0.05, 0.1)
# 2.0 and more fit the suite better (median 2.6% vs 3.8% in-sample, constant LR) but average
# the noise-driven estimate back in on the recorded 60-step ViT curves that
# tests/test_suggest_recorded.py pins (issue 14's failure): not in the grid
DISAGREEMENTS = (1.0, 1.5)
Setting = tuple[float, float]  # (noise_head, max_disagreement)


def capped(value: float, floor: float, sign: int) -> float:
    """``value``, or the untrained model's ``floor`` when there is none (no suggestion, a
    diverged run) or it is worse (``sign``: +1 when higher is better)."""
    return value if math.isfinite(value) and sign * value > sign * floor else floor


class Oracle:
    """One task's outcome at any LR, per protocol and seed, as % regret.

    ``runs``: ``(schedule, lr, seed) -> metric`` (NaN for a diverged run) at the task's
    optimizer; ``grid``: the LRs that define each seed's best; ``floors``: the untrained
    model's metric per seed.
    """

    def __init__(
        self, metric: str, runs: Mapping[tuple[str, float, int], float], grid: Sequence[float],
        floors: Mapping[int, float],
    ) -> None:  # fmt: skip
        self.sign = 1 if metric in HIGHER_IS_BETTER else -1
        points: dict[tuple[str, int], dict[float, float]] = {}
        for (schedule, lr, seed), value in runs.items():
            points.setdefault((schedule, seed), {})[lr] = value
        self.curves: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, float, float]] = {}
        for (protocol, seed), found in points.items():
            floor = floors[seed]
            lrs = sorted(found)
            y = np.array([self.scored(found[lr], floor) for lr in lrs])
            best = max(self.scored(found[lr], floor) for lr in grid if lr in found)
            self.curves[protocol, seed] = (np.log10(lrs), y, best, self.sign * floor)

    def scored(self, value: float, floor: float) -> float:
        """``value`` capped at the untrained model, signed so that higher is better."""
        return self.sign * capped(value, floor, self.sign)

    def trained(self, protocol: str, seed: int, lr: float) -> bool:
        """Whether a run at exactly ``lr`` is in the oracle (its regret is then measured)."""
        logx = self.curves[protocol, seed][0]
        return bool(np.any(np.isclose(logx, math.log10(lr), rtol=0, atol=1e-9)))

    def regret(self, protocol: str, seed: int, lr: float | None) -> float:
        """% of the range from this seed's best grid LR down to the untrained model."""
        logx, y, best, floor = self.curves[protocol, seed]
        achieved = floor if lr is None else float(np.interp(math.log10(lr), logx, y))
        return 100 * (best - achieved) / ((best - floor) or 1.0)

    def other_seeds_best(self, protocol: str, seed: int) -> float | None:
        """The LR with the best mean over the other seeds (among the LRs all of them ran):
        an oracle pick made without ``seed``'s own runs. Its regret on ``seed`` is the
        suite's noise-floor reference."""
        others = [s for p, s in self.curves if p == protocol and s != seed]
        if not others:
            return None
        tables = [dict(zip(np.round(self.curves[protocol, s][0], 9),
                           self.curves[protocol, s][1], strict=True)) for s in others]  # fmt: skip
        common = sorted(set.intersection(*(set(t) for t in tables)))
        if not common:
            return None
        best = max(common, key=lambda x: statistics.fmean(float(t[x]) for t in tables))
        return float(10**best)

    def regret_of(self, protocol: str, seed: int, value: float, floor: float) -> float:
        """The regret of a run that reached ``value`` (a peer trained its own way)."""
        _, _, best, signed_floor = self.curves[protocol, seed]
        return 100 * (best - self.scored(value, floor)) / ((best - signed_floor) or 1.0)


def load_oracle(name: str, metric: str, optimizer: str, grid: Sequence[float],
                floors: Mapping[int, float], grid_only: bool = False) -> Oracle:  # fmt: skip
    """The task's oracle from its store: every run at the task's optimizer (``grid_only``:
    the grid's LRs only, leaving out the exact LRs trained for a rule)."""
    runs: dict[tuple[str, float, int], float] = {}
    for r in Store(RESULTS / "suggest" / name).runs():
        c = r.config
        if c["optimizer"] != optimizer or r.status != "done" or c["seed"] not in SEEDS:
            continue
        if grid_only and c["lr"] not in grid:
            continue
        value = math.nan if r.diverged else float(r.summary["final"][metric])
        runs[c["schedule"], c["lr"], c["seed"]] = value
    return Oracle(metric, runs, grid, floors)


def factor_table(
    oracles: Mapping[str, Oracle], auto: Mapping[str, Mapping[int, float | None]], protocol: str
) -> dict[float, dict[str, float]]:
    """{log10 f: {task: mean regret % over seeds of ``auto`` × f}}."""
    out: dict[float, dict[str, float]] = {}
    for log_f in LOG_FACTORS:
        out[log_f] = {}
        for name, oracle in oracles.items():
            regrets = [oracle.regret(protocol, seed, lr and lr * 10**log_f)
                       for seed, lr in auto[name].items()]  # fmt: skip
            out[log_f][name] = statistics.fmean(regrets)
    return out


def best_factor(table: Mapping[float, Mapping[str, float]], keep: Callable[[str], bool]) -> float:
    """The log10 factor with the lowest mean regret over the tasks ``keep`` accepts (ties: the
    one nearest f = 1; f = 1 when it accepts none)."""
    if not any(keep(k) for k in next(iter(table.values()))):
        return 0.0
    return min(table, key=lambda f: (statistics.fmean(v for k, v in table[f].items() if keep(k)),
                                     abs(f)))  # fmt: skip


def fit(
    oracles: Mapping[str, Oracle], auto: Mapping[str, Mapping[int, float | None]]
) -> dict[str, Any]:
    """Per protocol: the factor table, the in-sample factor and each task's held-out factor."""
    report: dict[str, Any] = {}
    for protocol in PROTOCOLS:
        t = factor_table(oracles, auto, protocol)
        held = {name: best_factor(t, lambda k, n=name: k != n) for name in oracles}  # type: ignore[misc]
        report[protocol] = {"table": t, "in_sample": best_factor(t, lambda k: True),
                            "held_out": held}  # fmt: skip
    return report


def auto_at(
    records: Mapping[str, Mapping[int, Mapping[str, Any]]], setting: Setting
) -> dict[str, dict[int, float | None]]:
    """{task: {seed: auto's LR}} recomputed from the recorded curves at ``setting``."""
    from functools import partial

    from lrkit.finder.result import FinderResult
    from lrkit.suggest import auto, raw_input, summarize

    rule = raw_input(partial(auto, noise_head=setting[0], max_disagreement=setting[1]))
    out: dict[str, dict[int, float | None]] = {}
    for name, seeds in records.items():
        out[name] = {}
        for seed, record in seeds.items():
            res = FinderResult.from_dict(dict(record))
            out[name][seed] = summarize(res.curves, {"auto": rule}).suggestions["auto"]
    return out


def fit_thresholds(
    oracles: Mapping[str, Oracle], autos: Mapping[Setting, Mapping[str, Mapping[int, float | None]]]
) -> dict[str, Any]:
    """The guard thresholds and the factors fitted jointly: in-sample and leave-one-task-out.

    ``autos``: :func:`auto_at` per setting. Returns ``{"fits": {setting: fit()},
    "in_sample": setting, "held_out": {task: setting}, "scores": {setting: {task: regret}}}``
    where a held-out task's regret, per protocol, is read at its held-out setting and that
    setting's held-out factor (both fitted without it)."""
    fits = {s: fit(oracles, a) for s, a in autos.items()}

    def cost(s: Setting, keep: Callable[[str], bool]) -> float:
        total = 0.0
        for r in fits[s].values():
            f = best_factor(r["table"], keep)
            total += statistics.fmean(v for k, v in r["table"][f].items() if keep(k))
        return total

    def choose(keep: Callable[[str], bool]) -> Setting:
        # ties (a threshold that changes nothing on these tasks): the one nearest the prior
        return min(fits, key=lambda s: (round(cost(s, keep), 9), abs(s[0] - PRIOR_SETTING[0]),
                                        abs(min(s[1], 10.0) - PRIOR_SETTING[1])))  # fmt: skip

    held = {n: choose(lambda k, n=n: k != n) for n in oracles}  # type: ignore[misc]
    return {"fits": fits, "in_sample": choose(lambda k: True), "held_out": held}


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}%, worst {max(values):.2f}%"


def write(report: Mapping[str, Any]) -> str:
    lines = ["# Schedule factors: fitted on the suite, scored on held-out tasks", ""]
    for protocol, r in report.items():
        t, f, held = r["table"], r["in_sample"], r["held_out"]
        held_regret = [t[g][name] for name, g in held.items()]
        lines += [f"## {protocol}", "",
                  f"- in-sample best factor {10**f:.2f}: {summary(list(t[f].values()))}",
                  f"- leave-one-task-out: {summary(held_regret)} (factors "
                  f"{min(10**g for g in held.values()):.2f}–"
                  f"{max(10**g for g in held.values()):.2f})", "",
                  "| factor | mean | median | worst | " + " | ".join(t[f]) + " |",
                  "| --- | --- | --- | --- |" + " --- |" * len(t[f])]  # fmt: skip
        for g in LOG_FACTORS[::4]:
            v = list(t[g].values())
            lines.append(f"| {10**g:.2f} | {statistics.fmean(v):.2f} | "
                         f"{statistics.median(v):.2f} | {max(v):.2f} | "
                         + " | ".join(f"{x:.1f}" for x in v) + " |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def held_out_regret(thresholds: Mapping[str, Any], protocol: str) -> dict[str, float]:
    """{task: regret} of ``auto`` at the task's held-out setting × its held-out factor."""
    out = {}
    for name, setting in thresholds["held_out"].items():
        r = thresholds["fits"][setting][protocol]
        out[name] = r["table"][r["held_out"][name]][name]
    return out


def write_thresholds(thresholds: Mapping[str, Any]) -> str:
    fits = thresholds["fits"]
    lines = ["# auto's guard thresholds and the factors, fitted jointly", "",
             f"- in-sample setting (noise_head, max_disagreement): {thresholds['in_sample']}",
             "- leave-one-task-out settings: " + ", ".join(
                 f"{k} {v}" for k, v in thresholds["held_out"].items()), ""]  # fmt: skip
    for protocol in PROTOCOLS:
        held = held_out_regret(thresholds, protocol)
        lines += [f"## {protocol}", "",
                  f"- joint leave-one-task-out (setting, factor): {summary(list(held.values()))}",
                  "", "| noise_head | max_disagreement | in-sample | factor held out |",
                  "| --- | --- | --- | --- |"]  # fmt: skip
        for setting, r in fits.items():
            t = r[protocol]["table"]
            inside = list(t[r[protocol]["in_sample"]].values())
            outside = [t[g][n] for n, g in r[protocol]["held_out"].items()]
            lines.append(f"| {setting[0]:g} | {setting[1]:g} | {summary(inside)} | "
                         f"{summary(outside)} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    import argparse

    from benchmarks.suggest.run import load_suite

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--thresholds", action="store_true",
                        help="also fit auto's noise_head and max_disagreement")  # fmt: skip
    args = parser.parse_args()
    names = json.loads((RESULTS / "suggest.json").read_text())["tasks"]
    suite = load_suite(names)
    text = write(fit(suite.grid_oracles, suite.auto))
    if args.thresholds:
        curves = json.loads((RESULTS / "suggest_curves.json").read_text())
        records = {n: {s: curves[f"{n}|{s}"]["lrkit"] for s in SEEDS} for n in names}
        autos = {(h, d): auto_at(records, (h, d)) for h in NOISE_HEADS for d in DISAGREEMENTS}
        text += "\n" + write_thresholds(fit_thresholds(suite.grid_oracles, autos))
    (RESULTS / "suggest_fit.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
