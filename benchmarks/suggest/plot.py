"""The suite's figure, from its small summary (``docs/data/suggest_summary.json``).

Imports matplotlib only, so the docs build (``docs/hooks/suggest_figure.py``) draws the
figure from the committed summary without the oracle.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Mapping
from typing import Any

PROTOCOL_TITLES = {
    "constant": "constant LR",
    "one_cycle": "one-cycle (max LR)",
    "warmup_cosine": "warmup + cosine (peak LR)",
}


def render(summary: Mapping[str, Any]) -> bytes:
    """A PNG: per protocol, each rule's held-out regret on every task (dots; transformer
    tasks as triangles) and its median (a bar), rules ordered by median."""
    from matplotlib.figure import Figure

    protocols = [p for p in PROTOCOL_TITLES if p in summary["means"]]
    fig = Figure(figsize=(5.2 * len(protocols), 4.6), layout="constrained")
    axes = fig.subplots(1, len(protocols), sharex=True)
    transformers = set(summary["transformers"])
    for ax, protocol in zip(axes, protocols, strict=True):
        means = summary["means"][protocol]
        rules = sorted(means, key=lambda r: statistics.median(means[r].values()), reverse=True)
        for y, rule in enumerate(rules):
            per_task = means[rule]
            for task, value in per_task.items():
                clipped = min(max(value, -5.0), 100.0)
                ax.plot(clipped, y, "^" if task in transformers else "o", ms=4, alpha=0.6,
                        color="tab:red" if task in transformers else "tab:blue")  # fmt: skip
            ax.plot(statistics.median(per_task.values()), y, "|", ms=16, mew=2.5, color="black")
        ax.set_yticks(range(len(rules)), rules, fontsize=7)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(-5.5, 120.0)
        ax.axvline(0.5, color="green", lw=0.8, ls="--")
        ax.axvline(3.0, color="orange", lw=0.8, ls="--")
        ax.set(title=PROTOCOL_TITLES[protocol], xlabel="regret, % of range (seed mean)")
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle("Per task (blue: other, red ▲: transformer), median (|); target: median ≤ 0.5%,"
                 " worst ≤ 3% (dashed)", fontsize=9)  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
