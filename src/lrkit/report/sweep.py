"""The sweep report: parallel coordinates, LR sensitivity, per-fold table, curves, verdict.

Rendering only: the numbers come from :mod:`lrkit.report.analysis`. Reads only the store, so
``lrkit report runs/NAME`` can rebuild it at any time. Needs the ``report`` extra.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lrkit.report.analysis import (
    HIGHER_IS_BETTER,
    ConfigSummary,
    best_runs,
    by_line,
    fold_name,
    pick_metric,
    ranked,
    run_label,
    status_of,
    summarize,
    value_of,
    verdict,
)
from lrkit.report.html import Page
from lrkit.sweeps.store import RunRecord, Store

__all__ = ["write_sweep_report"]


STATUSES = ("finished", "diverged", "failed")


def off_scale(finite: list[float], metric: str) -> float:
    """Where runs without a result sit on a metric axis: beyond the worst finished value by
    a clear margin (never on a finished run's value, even when only one run finished)."""
    if not finite:
        return 0.0
    lo, hi = min(finite), max(finite)
    margin = max(0.15 * (hi - lo), 0.05 * max(abs(lo), abs(hi)), 1e-3)
    return lo - margin if metric in HIGHER_IS_BETTER else hi + margin


def parallel_figure(records: list[RunRecord], metric: str) -> Any:
    import plotly.graph_objects as go

    def categorical(values: list[Any], label: str) -> dict[str, Any]:
        levels = sorted({str(v) for v in values})
        index = {v: i for i, v in enumerate(levels)}
        return {
            "label": label,
            "values": [index[str(v)] for v in values],
            "tickvals": list(range(len(levels))),
            "ticktext": levels,
        }

    cfgs = [r.config for r in records]
    values = [value_of(r, metric) for r in records]
    finite = [v for v in values if math.isfinite(v)]
    beyond = off_scale(finite, metric)
    shown = [v if math.isfinite(v) else beyond for v in values]
    statuses = [status_of(r) for r in records]
    metric_axis: dict[str, Any] = {"label": metric, "values": shown}
    if finite and len(finite) < len(values):
        ticks = sorted({min(finite), max(finite)})
        metric_axis["tickvals"] = [*ticks, beyond]
        metric_axis["ticktext"] = [f"{t:.4g}" for t in ticks] + ["no result"]
    dims = [
        {"label": "log10 lr", "values": [math.log10(c["lr"]) for c in cfgs]},
        categorical([c["schedule"] for c in cfgs], "schedule"),
        categorical([c["optimizer"] for c in cfgs], "optimizer"),
        categorical([c["seed"] for c in cfgs], "seed"),
        categorical([fold_name(c["fold"]) for c in cfgs], "fold"),
        {
            "label": "outcome",
            "values": [STATUSES.index(s) if s in STATUSES else len(STATUSES) for s in statuses],
            "tickvals": list(range(len(STATUSES) + 1)),
            "ticktext": [*STATUSES, "not run"],
        },
        metric_axis,
    ]
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": shown,
                "colorscale": "Viridis",
                "showscale": True,
                "reversescale": metric not in HIGHER_IS_BETTER,
            },
            dimensions=dims,
        )
    )
    fig.update_layout(height=460, margin={"t": 80})
    return fig


def sensitivity_figure(summaries: list[ConfigSummary], metric: str) -> Any:
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    lines = by_line(summaries)
    best = ranked(summaries, metric)
    for i, ((schedule, optimizer), group) in enumerate(lines.items()):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        ok = [s for s in group if s.values]
        name = f"{schedule} · {optimizer}"
        if ok:
            xs = [s.lr for s in ok]
            fig.add_trace(
                go.Scatter(
                    x=xs + xs[::-1],
                    y=[max(s.values) for s in ok] + [min(s.values) for s in ok][::-1],
                    fill="toself",
                    fillcolor=color,
                    opacity=0.18,
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=name,
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[s.mean for s in ok],
                    name=name,
                    legendgroup=name,
                    mode="lines+markers",
                    line={"color": color},
                    customdata=[[s.std, len(s.values)] for s in ok],
                    hovertemplate="lr %{x:.3g}<br>mean %{y:.4g} ± %{customdata[0]:.2g}"
                    "<br>%{customdata[1]} runs<extra>" + name + "</extra>",
                )
            )
        finite = [v for s in summaries for v in s.values]
        beyond = off_scale(finite, metric)
        for outcome, symbol in (("diverged", "x"), ("failed", "triangle-down-open")):
            bad = [s for s in group if getattr(s, outcome)]
            if not bad:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[s.lr for s in bad],
                    y=[beyond] * len(bad),
                    mode="markers",
                    legendgroup=name,
                    marker={"symbol": symbol, "size": 11, "color": color},
                    name=f"{name}: {outcome} (no result, drawn off scale)",
                    text=[
                        f"{s.diverged} diverged, {s.failed} failed, {len(s.values)} finished "
                        f"of {s.runs}"
                        for s in bad
                    ],
                )
            )
    if best:
        b = best[0]
        fig.add_trace(
            go.Scatter(
                x=[b.lr],
                y=[b.mean],
                mode="markers",
                name=f"best: {b.label}",
                marker={
                    "symbol": "star",
                    "size": 18,
                    "color": "gold",
                    "line": {"color": "black", "width": 1},
                },
            )
        )
    fig.update_layout(
        title=f"LR sensitivity: final {metric} vs LR (mean, band = min…max over seeds/folds)",
        xaxis={"type": "log", "title": "learning rate"},
        yaxis={"title": metric},
        height=460,
    )
    return fig


def curves_figure(store: Store, top: list[tuple[str, str]]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for run_id, label in top:
        epochs = store.metrics(run_id, "epoch")
        if "val_loss" in epochs:
            ys = epochs["val_loss"]
            fig.add_trace(
                go.Scatter(x=list(range(1, len(ys) + 1)), y=ys, name=label, mode="lines+markers")
            )
    fig.update_layout(
        title="validation loss of the top runs",
        xaxis={"title": "epoch"},
        yaxis={"title": "val loss", "type": "log"},
        height=400,
    )
    return fig


def write_pngs(directory: Path, summaries: list[ConfigSummary], metric: str) -> None:
    """sensitivity.png: the same LR-sensitivity figure with matplotlib, for papers."""
    from lrkit._plot import new_axes, save

    fig, ax = new_axes(None)
    for (schedule, optimizer), group in by_line(summaries).items():
        ok = [s for s in group if s.values]
        if not ok:
            continue
        xs = [s.lr for s in ok]
        (line,) = ax.plot(xs, [s.mean for s in ok], "o-", label=f"{schedule} · {optimizer}")
        ax.fill_between(
            xs,
            [min(s.values) for s in ok],
            [max(s.values) for s in ok],
            color=line.get_color(),
            alpha=0.18,
            lw=0,
        )
    best = ranked(summaries, metric)
    if best:
        ax.plot(
            [best[0].lr],
            [best[0].mean],
            "*",
            ms=16,
            color="gold",
            mec="black",
            label=f"best: {best[0].label}",
        )
    ax.set(
        xscale="log",
        xlabel="learning rate",
        ylabel=f"final {metric}",
        title="LR sensitivity (band: min…max over seeds/folds)",
    )
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:  # no line when no run finished
        ax.legend(fontsize=8)
    save(fig, directory / "sensitivity.png")


def write_sweep_report(store: Store, sweep: str, path: str | Path) -> Path:
    """Build the report of ``sweep`` from ``store`` and write it (and its PNGs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = store.runs(sweep)
    spec = store.spec(sweep)
    metric = pick_metric(records)
    summaries = summarize(records, metric)
    order = ranked(summaries, metric)
    outcomes = [status_of(r) for r in records]
    counts = ", ".join(f"{outcomes.count(s)} {s}" for s in (*STATUSES, "running", "pending")
                       if s in STATUSES or outcomes.count(s))  # fmt: skip
    page = Page(
        title=f"lrkit sweep “{sweep}” on {spec['task']}",
        subtitle=(
            f"{len(records)} runs ({counts}); {spec['epochs']} epochs each; metric: final "
            f"{metric}. Diverged runs trained to inf/NaN; failed runs raised an error; neither "
            "has a metric, and the figures draw them off scale."
        ),
    )
    page.heading("Verdict")
    page.text(verdict(summaries, metric))
    page.heading("Parallel coordinates")
    page.figure(parallel_figure(records, metric))
    page.heading("LR sensitivity")
    page.figure(sensitivity_figure(summaries, metric))
    folds = sorted({f for s in summaries for f in s.by_fold})
    page.heading("Best configurations, per fold")
    rows = []
    for s in order[:8]:
        cells = ["—" if (m := s.fold_mean(f)) is None else f"{m:.4g}" for f in folds]
        rows.append([s.label, *cells, f"{s.mean:.4g} ± {s.std:.2g}", f"{len(s.values)}/{s.runs}"])
    page.table(
        ["configuration", *folds, "mean ± std", "finished"], rows, ["best"] + [""] * (len(rows) - 1)
    )
    top = [(r.id, run_label(r)) for r in best_runs(records, metric)]
    page.heading("Loss curves of the top runs")
    page.figure(curves_figure(store, top))
    failures = [r for r in records if r.status == "failed"]
    if failures:
        page.heading("Failed runs")
        page.table(
            ["run", "config", "error"],
            [
                [r.id, f"lr={r.config['lr']:.3g} {r.config['schedule']}", (r.error or "")[:200]]
                for r in failures
            ],
        )
    write_pngs(path.parent, summaries, metric)
    return page.write(path)
