"""The demo end to end (--quick), and its report looked at in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.browser import non_blank_fraction, render
from typer.testing import CliRunner

import lrkit
from lrkit.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo", "--quick", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "published: Lightning finder" in result.output
    return out


def test_demo_writes_every_output(demo_dir: Path) -> None:
    for name in ("report.html", "finder.png", "curves.png", "lr.png", "results.json"):
        assert (demo_dir / name).stat().st_size > 1000, name
    results = json.loads((demo_dir / "results.json").read_text())
    labels = [r["label"] for r in results["runs"]]
    assert labels[:3] == ["fixed 1e-05", "fixed 0.0001", "fixed 0.1"]
    assert labels[3].startswith("finder ") and labels[4].startswith("one-cycle max ")
    finder_lr = results["finder"]["suggestion"] or results["finder"]["suggestions"]["minimum"]
    assert results["runs"][3]["lr"] == pytest.approx(finder_lr)
    auto = results["finder"]["suggestions"]["auto"]
    if auto is not None:  # one-cycle gets the suggestion for one-cycle
        factor = lrkit.suggest.SCHEDULE_FACTORS["one_cycle"]
        assert results["runs"][4]["lr"] == pytest.approx(auto * factor)
    assert results["best"] in labels
    assert results["finder_s"] > 0


def test_demo_runs_share_init_and_data_order(demo_dir: Path) -> None:
    results = json.loads((demo_dir / "results.json").read_text())
    # 1e-5 and 1e-4 barely move the weights from the same start on the same batches:
    # their first-epoch training losses agree closely; a different init would not.
    a, b = results["runs"][0], results["runs"][1]
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.02)


def test_report_renders_in_headless_chromium(demo_dir: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    seen = render(demo_dir / "report.html", shot, tmp_path)
    assert seen["errors"] == [], seen["errors"]
    assert seen["plots"] == 3 and seen["drawn"] == 3, seen
    assert all(n >= 2 for n in seen["traces"]), seen["traces"]
    assert seen["tables"] >= 2
    assert "lrkit demo" in seen["title"]
    # Every figure drew something: lines and labels cover part of its area.
    for rect in seen["rects"]:
        assert rect[2] > 300 and rect[3] > 200, rect
        assert non_blank_fraction(shot, rect) > 0.03, rect


def test_report_is_self_contained(demo_dir: Path) -> None:
    text = (demo_dir / "report.html").read_text()
    assert "<script src=" not in text  # plotly.js is inlined, nothing is fetched
    assert "<link" not in text
    assert text.count("Plotly.newPlot") == 3
