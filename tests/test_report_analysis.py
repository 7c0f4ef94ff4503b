"""The analysis of a sweep (metric, summaries, ranking, verdict): pure data, no plotting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit.cli import app
from lrkit.report.analysis import best_runs, pick_metric, ranked, summarize, verdict
from lrkit.sweeps import Store, SweepSpec
from lrkit.sweeps.store import RunRecord

# (lr, seed) -> final accuracy; None: the run diverged
FINALS: dict[tuple[float, int], float | None] = {
    (0.01, 0): 0.80, (0.01, 1): 0.82,
    (0.1, 0): 0.90, (0.1, 1): 0.91,
    (1.0, 0): 0.95, (1.0, 1): None,
}  # fmt: skip


def fill_store(directory: Path) -> Store:
    """A store with one finished sweep of six runs, written without training anything."""
    store = Store(directory)
    spec = SweepSpec(task="digits-mlp", lrs=[0.01, 0.1, 1.0], seeds=[0, 1], epochs=1, name="s")
    configs = spec.expand()
    store.register("s", spec.to_dict(), configs)
    store.claim([c.id for c in configs])
    for c in configs:
        acc = FINALS[(c.lr, c.seed)]
        diverged = acc is None
        epoch = {"epoch": 1, "train_loss": 1.0, "val_loss": 1.0 - (acc or 0), "accuracy": acc}
        history = {"step_lr": [c.lr], "step_loss": [1.0], "diverged": diverged,
                   "epochs": [] if diverged else [epoch], "stop_reason": "completed",
                   "wall_s": 0.1}  # fmt: skip
        store.finish(c.id, {"history": history})
    return store


@pytest.fixture
def records(tmp_path: Path) -> list[RunRecord]:
    return fill_store(tmp_path).runs("s")


def test_pick_metric_prefers_the_tasks_metric(records: list[RunRecord]) -> None:
    assert pick_metric(records) == "accuracy"


def test_summaries_average_finished_runs_and_count_diverged(records: list[RunRecord]) -> None:
    by_lr = {s.lr: s for s in summarize(records, "accuracy")}
    assert by_lr[0.1].mean == pytest.approx(0.905) and by_lr[0.1].runs == 2
    assert by_lr[1.0].values == [0.95] and by_lr[1.0].diverged == 1


def test_a_config_with_a_diverged_run_ranks_after_every_clean_one(
    records: list[RunRecord],
) -> None:
    # lr=1.0 has the best mean of its finished runs, but one of its seeds diverged
    order = [s.lr for s in ranked(summarize(records, "accuracy"), "accuracy")]
    assert order == [0.1, 0.01, 1.0]


def test_verdict_names_the_best_config_and_whether_the_choice_is_sharp(
    records: list[RunRecord],
) -> None:
    text = verdict(summarize(records, "accuracy"), "accuracy")
    assert text.startswith("Best: constant with sgd at lr=0.1 — accuracy 0.905")
    assert "sharp" in text


def test_best_runs_are_finished_runs_best_first(records: list[RunRecord]) -> None:
    best = best_runs(records, "accuracy", n=3)
    assert [(r.config["lr"], r.config["seed"]) for r in best] == [(1.0, 0), (0.1, 1), (0.1, 0)]


def test_analysis_imports_no_rendering_module() -> None:
    code = (
        "import sys\n"
        "sys.modules['plotly'] = sys.modules['matplotlib'] = None\n"
        "import lrkit.report.analysis\n"
        "rendering = {'lrkit.report.html', 'lrkit.report.sweep', 'lrkit.report.figures'}\n"
        "print(sorted(rendering & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runs_best_ranks_configs_without_the_report_extras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(tmp_path)
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(app, ["runs", "best", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert text.index("lr=0.1") < text.index("lr=0.01") < text.index("lr=1")
    assert "Best: constant with sgd at lr=0.1" in text


def test_fold_means_average_each_folds_runs(records: list[RunRecord]) -> None:
    by_lr = {s.lr: s for s in summarize(records, "accuracy")}
    assert by_lr[0.1].fold_mean("split") == pytest.approx(0.905)
    assert by_lr[0.1].fold_mean("fold 0") is None
