"""Tables, the docs summary and the figure from the scored suite (``run.py`` calls
:func:`write`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.suggest.paths import NOISE_FLOOR
from benchmarks.suggest.plot import PROTOCOL_TITLES, render

HEADLINE = "lrkit suggestion (held out)"
TARGET_MEDIAN, TARGET_WORST = 0.5, 3.0


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f}%"


def how(rows: list[dict[str, Any]], rule: str) -> str:
    found = {r["how"] for r in rows if r["rule"] == rule}
    return ", ".join(sorted(found))


def headline(results: dict[str, Any]) -> list[str]:
    """Per protocol: every rule and peer, median / worst over tasks (seed means)."""
    n = len(results["tasks"])
    lines = [f"Regret in % of the range from each seed's best grid LR down to the untrained "
             f"model, mean of {results['seeds']} seeds per task; median and worst over "
             f"{n} tasks; **held out**: lrkit's factor for each task fitted on the other "
             f"{n - 1}.", ""]  # fmt: skip
    for protocol, title in PROTOCOL_TITLES.items():
        s = results["summary"].get(protocol)
        if not s:
            continue
        lines += [f"### {title}", "",
                  "| rule | median | worst (task) | worst transformer task | how |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for rule, v in sorted(s.items(), key=lambda kv: (kv[1]["median"], kv[1]["worst"])):
            name = f"**{rule}**" if rule == HEADLINE else rule
            lines.append(f"| {name} | {_pct(v['median'])} | {_pct(v['worst'])} "
                         f"({v['worst_task']}) | {_pct(v['transformers_worst'])} | "
                         f"{how(results['rows'], rule)} |")  # fmt: skip
        lines.append("")
    return lines


def per_task(results: dict[str, Any], rules: list[str]) -> list[str]:
    lines = []
    for protocol, title in PROTOCOL_TITLES.items():
        means = results["means"].get(protocol)
        if not means:
            continue
        shown = [r for r in rules if r in means]
        lines += [f"### {title}", "", "| task | " + " | ".join(shown) + " |",
                  "| --- |" + " --- |" * len(shown)]  # fmt: skip
        for task in results["tasks"]:
            mark = " (transformer)" if task in results["transformers"] else ""
            cells = [f"{means[r].get(task, math.nan):.2f}" for r in shown]
            lines.append(f"| {task}{mark} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def target(results: dict[str, Any]) -> list[str]:
    """Where the issue's target is missed: which task, by how much."""
    lines = []
    for protocol, title in PROTOCOL_TITLES.items():
        s = results["summary"].get(protocol)
        if not s or HEADLINE not in s:
            continue
        ours = s[HEADLINE]
        per = results["means"][protocol][HEADLINE]
        misses = []
        if ours["median"] > TARGET_MEDIAN:
            misses.append(f"median {ours['median']:.2f}% > {TARGET_MEDIAN}%")
        over = {k: v for k, v in per.items() if v > TARGET_WORST}
        misses += [f"{k} {v:.2f}% > {TARGET_WORST}%"
                   + (" (transformer)" if k in results["transformers"] else "")
                   for k, v in sorted(over.items(), key=lambda kv: -kv[1])]  # fmt: skip
        for rule, v in s.items():
            if rule.startswith("lrkit") or rule == NOISE_FLOOR:
                continue
            if v["median"] < ours["median"] or v["worst"] < ours["worst"]:
                misses.append(f"{rule} beats it on the "
                              + " and ".join(k for k in ("median", "worst")
                                             if v[k] < ours[k]))  # fmt: skip
        status = "met" if not misses else "missed: " + "; ".join(misses)
        lines.append(f"- **{title}**: {_pct(ours['median'])} / {_pct(ours['worst'])} — {status}")
        if NOISE_FLOOR in s:
            f = s[NOISE_FLOOR]
            lines.append(f"  - noise floor (the grid LR best on the other seeds): "
                         f"{_pct(f['median'])} / {_pct(f['worst'])} ({f['worst_task']}) — "
                         "an oracle pick from the other seeds' full runs; a one-curve rule is not "
                         "expected to do better")  # fmt: skip
    return lines


def factors(results: dict[str, Any]) -> list[str]:
    lines = ["| protocol | in-sample factor | held-out factors (min–max over tasks) |",
             "| --- | --- | --- |"]  # fmt: skip
    for protocol, f in results["factors"].items():
        held = list(f["held_out"].values())
        lines.append(f"| {protocol} | {f['in_sample']:.2f} | {min(held):.2f}–{max(held):.2f} |")
    return lines


def summary_json(results: dict[str, Any]) -> dict[str, Any]:
    """What the docs build plots: per protocol, rule and task the mean regret (< 200 KB)."""
    return {"seeds": results["seeds"], "tasks": results["tasks"],
            "transformers": results["transformers"], "factors": results["factors"],
            "thresholds": results.get("thresholds"),
            "summary": results["summary"],
            "means": {p: {r: {t: round(v, 3) for t, v in per.items()}
                          for r, per in rules.items()}
                      for p, rules in results["means"].items()}}  # fmt: skip


def write(results: dict[str, Any], directory: Path, docs_summary: Path) -> None:
    rules = [HEADLINE, "lrkit suggestion (shipped factors)", "lrkit auto", "lrkit valley",
             "lightning", "torch-lr-finder", "fixed default", NOISE_FLOOR]  # fmt: skip
    rules += sorted({r["rule"] for r in results["rows"] if r["how"] == "trained"} - set(rules))
    lines = ["# Suggestion quality on the wide suite", "", "## Held-out headline", "",
             *headline(results), "## Target (median ≤ 0.5%, worst ≤ 3%, every transformer "
             "task ≤ 3%, better median and worst than every peer)", "", *target(results), "",
             "## Schedule factors", "", *factors(results), "",
             "auto's thresholds (noise_head, max_disagreement) fitted with them: in-sample "
             f"{results['thresholds']['in_sample']}; held out, per task: "
             + ", ".join(f"{k} {v}" for k, v in results["thresholds"]["held_out"].items()),
             "",
             "## Per task (regret %, mean over seeds)", "", *per_task(results, rules)]  # fmt: skip
    text = "\n".join(lines)
    (directory / "suggest.md").write_text(text)
    small = summary_json(results)
    docs_summary.parent.mkdir(parents=True, exist_ok=True)
    docs_summary.write_text(json.dumps(small, indent=1, sort_keys=True) + "\n")
    (directory / "suggest.png").write_bytes(render(small))
    print(text)
