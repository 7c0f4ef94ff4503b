"""Tables and a figure from benchmarks/results/suggest.json."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

PROTOCOL_NAMES = {
    "constant": "constant LR",
    "one_cycle": "one-cycle (max LR)",
    "cosine": "cosine annealing (peak LR)",
}


def summary(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """{protocol: {rule: {median, worst, within1, tasks, beats_default, grid_median,
    grid_worst}}} over tasks (seed means; ``beats_default``: tasks where the rule's regret is
    lower than the fixed default's, or both are within 0.5% of the oracle; ``grid_*``: the
    regret against the task's best grid LR instead of each seed's best)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for protocol in PROTOCOL_NAMES:
        per_rule = _task_means(results, protocol, "regret_pct")
        per_rule_grid = _task_means(results, protocol, "regret_grid_pct")
        default = per_rule["fixed default"]
        out[protocol] = {}
        for rule, values in per_rule.items():
            out[protocol][rule] = {
                "median": statistics.median(values),
                "worst": max(values),
                "within1": sum(v <= 1.0 for v in values),
                "tasks": len(values),
                "beats_default": sum(v < d or max(v, d) <= 0.5
                                     for v, d in zip(values, default, strict=True)),
                "grid_median": statistics.median(per_rule_grid[rule]),
                "grid_worst": max(per_rule_grid[rule]),
            }  # fmt: skip
    return out


def _task_means(results: dict[str, Any], protocol: str, field: str) -> dict[str, list[float]]:
    """{rule: [the seed mean of ``field`` on each task, in task order]} for ``protocol``."""
    out: dict[str, list[float]] = defaultdict(list)
    for task in results["tasks"].values():
        by_rule: dict[str, list[float]] = defaultdict(list)
        for row in task["rows"]:
            if row["protocol"] == protocol:
                by_rule[row["rule"]].append(row[field])
        for rule, values in by_rule.items():
            out[rule].append(statistics.fmean(values))
    return out


def spread(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{task: {rule: decades between the seeds' suggestions}}."""
    out: dict[str, dict[str, float]] = {}
    for name, task in results["tasks"].items():
        sug = task["suggestions"]
        seeds = list(sug)
        out[name] = {}
        for rule in sug[seeds[0]]:
            if "|" in rule:
                continue
            lrs = [sug[s][rule] for s in seeds]
            if all(lr is not None for lr in lrs):
                logs = [math.log10(lr) for lr in lrs]
                out[name][rule] = max(logs) - min(logs)
            else:
                out[name][rule] = math.nan
    return out


def write(results: dict[str, Any], directory: Path) -> None:
    lines = ["# Suggestion quality", ""]
    summ = summary(results)
    for protocol, title in PROTOCOL_NAMES.items():
        lines += [f"## {title}: regret as % of the range from the oracle's best to the "
                  f"untrained model (mean of {results.get('seeds', 4)} seeds)", ""]  # fmt: skip
        lines += ["| rule | median | worst | tasks within 1% | better than fixed default | "
                  "against the best grid LR: median / worst |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for rule, s in sorted(summ[protocol].items(), key=lambda kv: kv[1]["median"]):
            n = s["tasks"]
            lines.append(f"| {rule} | {s['median']:.2f}% | {s['worst']:.2f}% | "
                         f"{s['within1']}/{n} | {s['beats_default']}/{n} | "
                         f"{s['grid_median']:.2f}% / {s['grid_worst']:.2f}% |")  # fmt: skip
        lines.append("")
    sp = spread(results)
    rules = sorted({r for t in results["tasks"].values() for r in t.get("runs3_spread", {})})
    lines += ["## Stability: spread of each lrkit rule over `find_lr(runs=3)` (decades; "
              "⚠ > 0.5)", "", "| task | " + " | ".join(rules) + " |",
              "| --- |" + " --- |" * len(rules)]  # fmt: skip
    for name, task in results["tasks"].items():
        cells = []
        for rule in rules:
            value = task.get("runs3_spread", {}).get(rule, math.nan)
            cells.append("—" if math.isnan(value) else f"{value:.2f}{' ⚠' if value > 0.5 else ''}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Per task (seed 0; ×best = suggested LR / oracle-best LR; ⚠ = the rule's "
              f"suggestions over the {results.get('seeds', 4)} seeds (each its own init and "
              "data order) span more than half a decade)", ""]  # fmt: skip
    for name, task in results["tasks"].items():
        lines += [f"### {name} (metric: {task['metric']})", "",
                  "| rule | protocol | LR | ×best | metric | regret % |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for row in task["rows"]:
            if row["seed"] != 0:
                continue
            lr = row["lr"]
            ratio = "—" if lr is None else f"{lr / row['best_lr']:.2g}"
            flag = " ⚠" if sp[name].get(row["rule"], 0) > 0.5 else ""
            shown = "—" if lr is None else f"{lr:.2g}"
            lines.append(f"| {row['rule']}{flag} | {row['protocol']} | {shown} | {ratio} | "
                         f"{row['metric']:.4g} | {row['regret_pct']:.1f} |")  # fmt: skip
        lines.append("")
    (directory / "suggest.md").write_text("\n".join(lines))
    plot(results, directory / "suggest.png")
    print("\n".join(lines[: 2 + len(summ) * (len(summ["constant"]) + 5)]))


def plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    from lrkit._plot import save

    fig = Figure(figsize=(6.5 * len(PROTOCOL_NAMES), 5), layout="constrained")
    axes = fig.subplots(1, len(PROTOCOL_NAMES), sharey=True)
    tasks = list(results["tasks"])
    rules = sorted({row["rule"] for t in results["tasks"].values() for row in t["rows"]})
    width = 0.8 / len(rules)
    for ax, protocol in zip(axes, PROTOCOL_NAMES, strict=True):
        means = _task_means(results, protocol, "regret_pct")
        for i, rule in enumerate(rules):
            ax.bar([t + i * width for t in range(len(tasks))], means[rule], width, label=rule)
        ax.set_xticks([t + 0.4 - width / 2 for t in range(len(tasks))], tasks, rotation=30)
        ax.set(title=PROTOCOL_NAMES[protocol], ylabel="regret, % of range (best to untrained)")
        ax.grid(True, axis="y", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    save(fig, path)
