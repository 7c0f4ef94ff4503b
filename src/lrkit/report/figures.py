"""Interactive (plotly) figures of finder results and training histories."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lrkit._plot import finder_marks, label_places, running_mean
from lrkit.report.html import require_plotly

if TYPE_CHECKING:
    from lrkit.finder import FinderResult
    from lrkit.train import History


def finder_figure(result: FinderResult) -> Any:
    """Loss vs LR (log x) with every suggestion as a labelled vertical line."""
    require_plotly()
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=result.lrs, y=result.losses, name="train loss (raw)",
                             line={"color": "#bbbbbb", "width": 1}))  # fmt: skip
    fig.add_trace(go.Scatter(x=result.lrs, y=result.smoothed, name="train loss (smoothed)",
                             line={"color": "#1f77b4", "width": 2.5}))  # fmt: skip
    if result.val_losses is not None:
        fig.add_trace(go.Scatter(x=result.lrs, y=result.val_losses, name="val loss",
                                 line={"color": "#17becf", "width": 2.5}))  # fmt: skip
    marks = finder_marks(result)
    for (label, lr, color, main), (height, side) in zip(
        marks, label_places([lr for _, lr, _, _ in marks]), strict=True
    ):
        fig.add_vline(x=lr, line={"color": color, "dash": "solid" if main else "dash",
                                  "width": 3 if main else 1.5})  # fmt: skip
        # On a log axis an annotation's x is log10(lr) (a shape's is lr): add_vline's own
        # annotation put the labels at 10**lr, bunched at the right edge, away from their lines.
        fig.add_annotation(
            x=math.log10(lr), xref="x", y=height, yref="paper", text=label, showarrow=False,
            textangle=-90, xanchor="left" if side == "left" else "right", yanchor="top",
            font={"color": color, "size": 11}, bgcolor="rgba(255,255,255,0.75)",
        )  # fmt: skip
    low = min(result.smoothed) if result.smoothed else 0.0
    top = max(result.smoothed[0], low) if result.smoothed else 1.0
    pad = 0.25 * abs(top - low) + 1e-9
    fig.update_layout(
        title=f"LR range test — {result.suggestion_label}",
        xaxis={"type": "log", "title": "learning rate"},
        yaxis={"title": "loss", "range": [low - 0.4 * pad, top + pad]},
        height=460,
    )
    return fig


def history_figure(histories: dict[str, History], metric: str = "accuracy") -> Any:
    """Train loss per step, val loss and val metric per epoch, one colour per run."""
    require_plotly()
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=3,
        subplot_titles=("train loss per step (running mean)", "val loss", f"val {metric}"),
    )  # fmt: skip
    palette = qualitative.Plotly
    for i, (label, h) in enumerate(histories.items()):
        color = palette[i % len(palette)]
        window = max(len(h.step_loss) // 50, 1)
        fig.add_trace(go.Scatter(y=running_mean(h.step_loss, window), name=label,
                                 legendgroup=label, line={"color": color}), 1, 1)  # fmt: skip
        epochs = [e["epoch"] for e in h.epochs]
        if h.epochs and "val_loss" in h.epochs[0]:
            fig.add_trace(go.Scatter(x=epochs, y=[e["val_loss"] for e in h.epochs], name=label,
                                     legendgroup=label, showlegend=False,
                                     line={"color": color}), 1, 2)  # fmt: skip
        if h.epochs and metric in h.epochs[0]:
            fig.add_trace(go.Scatter(x=epochs, y=[e[metric] for e in h.epochs], name=label,
                                     legendgroup=label, showlegend=False,
                                     line={"color": color}), 1, 3)  # fmt: skip
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_xaxes(title_text="epoch", row=1, col=3)
    fig.update_layout(height=420, legend={"orientation": "h", "y": -0.2})
    return fig


def lr_figure(histories: dict[str, History]) -> Any:
    """The LR of every optimizer step of each run (log y)."""
    require_plotly()
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, h in histories.items():
        fig.add_trace(go.Scatter(y=h.step_lr, name=label))
    fig.update_layout(
        title="learning rate per step",
        xaxis={"title": "step"},
        yaxis={"type": "log", "title": "learning rate"},
        height=380,
    )
    return fig
