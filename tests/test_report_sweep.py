"""What sweep reports say and draw (issue 16, item 13): failed, diverged and finished runs are
three outcomes; a best LR at the edge of the grid asks for a wider grid; `lrkit runs ls` fits
80 columns; the quick demo does not pose beside the published result."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lrkit import cli
from lrkit.report.analysis import summarize, verdict
from lrkit.sweeps import Store, SweepSpec
from lrkit.sweeps.store import RunRecord

pytest.importorskip("plotly")


def fill(directory: Path, finals: dict[float, float | str]) -> list[RunRecord]:
    """A store with one run per LR: a final accuracy, "diverged" or "failed"."""
    store = Store(directory)
    spec = SweepSpec(task="digits-mlp", lrs=sorted(finals), epochs=1, name="s")
    configs = spec.expand()
    sweep_id = getattr(spec, "sweep_id", "s")  # (getattr: the test also runs on lrkit 0.1)
    store.register(sweep_id, spec.to_dict(), configs)
    store.claim([c.id for c in configs])
    for c in configs:
        outcome = finals[c.lr]
        if outcome == "failed":
            store.fail(c.id, "RuntimeError: boom")
            continue
        diverged = outcome == "diverged"
        epoch = {"epoch": 1, "train_loss": 0.4321, "val_loss": 0.5432, "accuracy": outcome}
        epochs = [] if diverged else [epoch]
        store.finish(c.id, {"history": {"step_lr": [c.lr], "step_loss": [1.0],
                                        "diverged": diverged, "epochs": epochs,
                                        "stop_reason": "completed", "wall_s": 0.1}})  # fmt: skip
    return store.runs(sweep_id)


def test_a_best_lr_at_the_edge_of_the_grid_asks_to_extend_it(tmp_path: Path) -> None:
    records = fill(tmp_path, {0.001: 0.5, 0.01: 0.7, 0.1: 0.9})
    text = verdict(summarize(records, "accuracy"), "accuracy")
    assert "extend the grid above 0.1" in text and "sharp" not in text
    records = fill(tmp_path / "low", {0.001: 0.9, 0.01: 0.7, 0.1: 0.5})
    assert "extend the grid below 0.001" in verdict(summarize(records, "accuracy"), "accuracy")
    records = fill(tmp_path / "mid", {0.001: 0.5, 0.01: 0.9, 0.1: 0.5})
    assert "extend" not in verdict(summarize(records, "accuracy"), "accuracy")


def test_diverged_runs_are_drawn_off_scale_not_at_a_finished_value(tmp_path: Path) -> None:
    from lrkit.report.sweep import parallel_figure, sensitivity_figure

    records = fill(tmp_path, {0.01: 0.9, 1.0: "diverged", 10.0: "failed"})
    fig = parallel_figure(records, "accuracy")
    axis = {d["label"]: d for d in fig.data[0].dimensions}
    values = list(axis["accuracy"]["values"])
    assert values[0] == pytest.approx(0.9)
    assert values[1] < 0.9 and values[2] < 0.9  # was 0.9: the diverged run drawn as the best
    outcome = axis["outcome"]
    shown = [outcome["ticktext"][int(v)] for v in outcome["values"]]
    assert shown == ["finished", "diverged", "failed"]  # was: failed shown as diverged
    names = [t.name for t in sensitivity_figure(summarize(records, "accuracy"), "accuracy").data]
    assert any("diverged" in str(n) for n in names) and any("failed" in str(n) for n in names)
    ys = [t.y for t in sensitivity_figure(summarize(records, "accuracy"), "accuracy").data
          if "off scale" in str(t.name)]  # fmt: skip
    assert ys and all(y < 0.9 for ys_ in ys for y in ys_)


def test_only_failed_runs_are_not_shown_as_diverged_with_metric_zero(tmp_path: Path) -> None:
    from lrkit.report.sweep import parallel_figure, write_sweep_report

    records = fill(tmp_path, {0.01: "failed", 0.1: "failed"})
    axis = {d["label"]: d for d in parallel_figure(records, "accuracy").data[0].dimensions}
    assert "diverged" not in axis
    assert {axis["outcome"]["ticktext"][int(v)] for v in axis["outcome"]["values"]} == {"failed"}
    store = Store(tmp_path)
    page = write_sweep_report(store, store.sweeps()[0], tmp_path / "r" / "report.html")
    text = page.read_text()
    assert "0 finished, 0 diverged, 2 failed" in text


def test_runs_ls_fits_one_line_per_run_in_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(tmp_path, {0.001: 0.5, 0.01: 0.7, 0.1: "diverged", 1.0: "failed"})
    monkeypatch.setattr(cli, "console", Console(width=80, force_terminal=False))
    result = CliRunner().invoke(cli.app, ["runs", "ls", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) <= 4 + 3, lines  # a title, a header, a note: no row wraps
    for r in Store(tmp_path).runs():
        status = "diverged" if r.diverged else r.status
        row = [line for line in lines if r.id[:8] in line]
        assert len(row) == 1 and status in row[0] and f"{r.config['lr']:.3g}" in row[0], lines


def test_the_quick_demo_does_not_show_the_published_result_as_comparable() -> None:
    from lrkit.demo import PUBLISHED, summary_rows

    run = {"label": "finder", "lr": 0.03, "accuracy": 0.7, "val_loss": 0.9, "wall_s": 1.0,
           "diverged": False}  # fmt: skip
    results = {"metric": "accuracy", "runs": [run], "best": "finder", "published": PUBLISHED}
    _, rows, _ = summary_rows(results | {"quick": True})
    published = rows[-1]
    assert "not comparable" in published[0]
    assert f"{100 * PUBLISHED['val_accuracy']:.2f}%" not in published
    assert not any(isinstance(c, str) and math.isnan(0.0) for c in published)
    _, rows, _ = summary_rows(results | {"quick": False})
    assert f"{100 * PUBLISHED['val_accuracy']:.2f}%" in rows[-1]
