"""Matplotlib figures. Imported lazily: matplotlib is the optional ``plot`` extra.

Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so
plotting neither opens windows nor touches global state.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lrkit.finder import FinderResult

COLORS = {
    "auto": "#d62728",
    "steepest": "#2ca02c",
    "valley": "#9467bd",
    "minimum": "#ff7f0e",
    "steep": "#8c564b",
    "slide": "#17becf",
}
SUGGESTION_COLOR = "#111111"


def finder_marks(result: FinderResult) -> list[tuple[str, float, str, bool]]:
    """The vertical lines of a finder figure, as ``(label, lr, color, is_suggestion)``: the
    suggestion for the result's schedule first (``res.suggestion``), then each rule's raw LR
    (:meth:`FinderResult.rule_label`), so a figure never shows one number as the other."""
    marks = []
    if result.suggestion is not None:
        label = f"suggestion ({result.for_schedule}) {result.suggestion:.3g}"
        marks.append((label, result.suggestion, SUGGESTION_COLOR, True))
    for name, lr in result.suggestions.items():
        if lr is not None:
            unstable = " UNSTABLE" if name in result.unstable else ""
            marks.append((result.rule_label(name) + unstable, lr, COLORS.get(name, "0.3"), False))
    return marks


def label_places(
    lrs: list[float], top: float = 0.98, step: float = 0.36
) -> list[tuple[float, str]]:
    """Where each line's label goes: ``(height in axes fraction, side of the line)``.

    A line within a fifth of a decade of earlier ones (log scale) takes the other side of
    its line, then a lower level, so close suggestions keep legible labels beside their own
    lines instead of bunching.
    """
    import math

    places: list[tuple[float, str]] = []
    for i, lr in enumerate(lrs):
        k = sum(1 for j in range(i) if abs(math.log10(lr / lrs[j])) < 0.2)
        places.append((top - (k // 2) * step, "left" if k % 2 else "right"))
    return places


def require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'lrkit[plot]'") from exc
    return matplotlib


def new_axes(ax: Axes | None, size: tuple[float, float] = (7.0, 4.5)) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a fresh figure with one axes."""
    require_matplotlib()
    from matplotlib.figure import Figure

    if ax is not None:
        fig = ax.get_figure()
        assert fig is not None
        return fig, ax  # type: ignore[return-value]
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def save(fig: Figure, path: str | Path | None) -> None:
    if path is not None:
        fig.savefig(Path(path), dpi=120)


def plot_finder(
    result: FinderResult, path: str | Path | None = None, ax: Axes | None = None
) -> Figure:
    """Loss vs LR on a log axis: raw and smoothed loss, each suggestion a labelled line."""
    fig, ax = new_axes(ax)
    val = result.val_losses is not None
    for k, curve in enumerate(result.curves):
        alpha = 1.0 if k == 0 else 0.35
        if k == 0:
            ax.plot(curve.lrs, curve.losses, color="0.75", lw=0.8, label="train loss (raw)")
        ax.plot(
            curve.lrs,
            curve.smoothed,
            color="#1f77b4",
            lw=1.8 if k == 0 else 1.0,
            alpha=alpha,
            label="train loss (smoothed)" if k == 0 else None,
        )
        if curve.val_losses is not None:
            ax.plot(
                curve.lrs,
                curve.val_losses,
                color="#17becf",
                lw=1.8 if k == 0 else 1.0,
                alpha=alpha,
                label="val loss (fixed subset)" if k == 0 else None,
            )
    for name in result.suggestions:
        runs = [v for v in result.per_run.get(name, []) if v is not None]
        if result.runs > 1 and len(runs) > 1:
            ax.axvspan(min(runs), max(runs), color=COLORS.get(name, "k"), alpha=0.12, lw=0)
    marks = finder_marks(result)
    places = label_places([lr for _, lr, _, _ in marks])
    for (label, lr, color, main), (height, side) in zip(marks, places, strict=True):
        ax.axvline(lr, color=color, ls="-" if main else "--", lw=2.2 if main else 1.2)
        # the label beside its own line (not in a legend far from it), reading upwards;
        # ha names the text's edge at the line: "right" puts the text on its left side
        ax.text(lr, height, label, transform=ax.get_xaxis_transform(), rotation=90,
                ha="left" if side == "left" else "right", va="top", fontsize=7.5, color=color,
                fontweight="bold" if main else "normal",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 1.0},
                )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("learning rate" + (" (largest group)" if len(result.group_ratios) > 1 else ""))
    ax.set_ylabel("loss")
    curves = (
        [c.suggestion_curve() for c in result.curves if c.lrs]
        if val
        else [c.smoothed for c in result.curves if c.lrs]
    )
    if curves:
        lo = min(min(c) for c in curves)
        start = max(c[0] for c in curves)
        top = max(start, lo) + 0.25 * abs(max(start, lo) - lo) + 1e-12
        ax.set_ylim(lo - 0.1 * (top - lo), top)
    title = f"LR range test\n{result.suggestion_label}"
    if result.runs > 1:
        title += f"\n{result.runs} runs; bands: spread of each rule over runs"
    if result.unstable:
        title += f"\nunstable over runs: {', '.join(result.unstable)}"
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(True, which="both", alpha=0.25)
    save(fig, path)
    return fig


def plot_schedule(
    schedules: Any,
    steps: int,
    path: str | Path | None = None,
    ax: Axes | None = None,
    labels: list[str] | None = None,
) -> Figure:
    """LR over ``steps`` for one schedule or several overlaid; momentum on a twin axis."""
    from lrkit.schedules import Schedule, parse

    items = [schedules] if isinstance(schedules, (Schedule, str, dict)) else list(schedules)
    if not items:
        raise ValueError("plot_schedule needs at least one schedule")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1 (got {steps!r})")
    scheds = [parse(s) for s in items]
    if labels is not None and len(labels) != len(scheds):
        raise ValueError(f"labels has {len(labels)} entries for {len(scheds)} schedules")
    fig, ax = new_axes(ax)
    xs = list(range(steps))
    twin = None
    for i, sched in enumerate(scheds):
        label = labels[i] if labels is not None else sched.to_spec()
        if len(label) > 70:
            label = label[:67] + "..."
        (line,) = ax.plot(xs, [sched.lr_at(t) for t in xs], lw=1.8, label=label)
        momentum = sched.momentum_schedule()
        if momentum is not None:
            twin = twin or ax.twinx()
            twin.plot(xs, [momentum.lr_at(t) for t in xs], color=line.get_color(), ls=":", lw=1.4)
    if twin is not None:
        twin.set_ylabel("momentum / beta1 (dotted)")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title("learning-rate schedule" + ("s" if len(scheds) > 1 else ""))
    save(fig, path)
    return fig


def running_mean(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_histories(
    histories: dict[str, Any], path: str | Path | None = None, metric: str = "accuracy"
) -> Figure:
    """Training curves of several runs: train loss per step, val loss and metric per epoch."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4), layout="constrained")
    ax_step, ax_loss, ax_metric = fig.subplots(1, 3)
    for label, h in histories.items():
        window = max(len(h.step_loss) // 50, 1)
        (line,) = ax_step.plot(running_mean(h.step_loss, window), lw=1.2, label=label)
        epochs = [e["epoch"] for e in h.epochs]
        if h.epochs and "val_loss" in h.epochs[0]:
            ax_loss.plot(epochs, [e["val_loss"] for e in h.epochs], "o-", color=line.get_color())
        if h.epochs and metric in h.epochs[0]:
            ax_metric.plot(epochs, [e[metric] for e in h.epochs], "o-", color=line.get_color())
        if h.diverged:
            ax_step.plot([len(h.step_loss) - 1], [h.step_loss[-1] if h.step_loss else 0], "x",
                         color=line.get_color(), ms=10)  # fmt: skip
    ax_step.set(xlabel="step", ylabel="train loss (running mean)", yscale="log")
    ax_loss.set(xlabel="epoch", ylabel="val loss", yscale="log")
    ax_metric.set(xlabel="epoch", ylabel=f"val {metric}")
    for ax in (ax_step, ax_loss, ax_metric):
        ax.grid(True, alpha=0.25)
    ax_step.legend(fontsize=8)
    save(fig, path)
    return fig


def plot_lr_histories(histories: dict[str, Any], path: str | Path | None = None) -> Figure:
    """The LR of every optimizer step of several runs, on a log axis."""
    fig, ax = new_axes(None)
    for label, h in histories.items():
        ax.plot(h.step_lr, lw=1.5, label=label)
    ax.set(xlabel="step", ylabel="learning rate", yscale="log", title="learning rate per step")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    save(fig, path)
    return fig
