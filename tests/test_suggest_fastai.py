"""lrkit's ``valley``, ``steep``, ``minimum`` and ``slide`` against fastai's own answers.

``tests/fixtures/fastai_rules.json`` was produced by fastai itself (its real
``Learner.lr_find``, Recorder and rules; ``tests/fixtures/make_fastai_fixture.py`` says how)
on synthetic and recorded curves: clean and noisy valleys, flat noisy starts, early
divergence, short sweeps, monotone curves, a NaN mid-run, loss scales 0.05 and 20.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lrkit import suggest
from lrkit.finder.tracker import CurveTracker

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "fastai_rules.json").read_text())
CURVES = FIXTURE["curves"]
RULES = ("valley", "slide", "minimum", "steep")


def as_float32(values: list[str]) -> np.ndarray:
    """fastai keeps float32; the fixture stores each value's shortest float32 repr."""
    return np.array([np.float32(v) for v in values], dtype=np.float64)


def same(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return got == pytest.approx(want, rel=1e-6)  # fastai returns float32 LRs


def test_the_fixture_covers_at_least_fifty_curves_of_every_kind() -> None:
    names = [c["name"] for c in CURVES]
    assert len(names) >= 50
    for kind in (
        "valley",
        "flat-noisy",
        "early-divergence",
        "short",
        "monotone",
        "nan",
        "vit",
        "lenet",
    ):
        assert any(kind in n for n in names), kind


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_equals_fastais_on_the_curve_fastai_recorded(rule: str) -> None:
    wrong = []
    for c in CURVES:
        lrs, losses = as_float32(c["recorded_lrs"]), as_float32(c["recorded_losses"])
        got = getattr(suggest, rule)(lrs, losses, num_steps=c["num_it"]).lr
        if not same(got, c["fastai"][rule]):
            wrong.append((c["name"], got, c["fastai"][rule]))
    assert not wrong


def test_the_finders_ema_is_fastais_recorder_smoothing() -> None:
    for c in CURVES:
        fastai = as_float32(c["recorded_losses"])
        tracker = CurveTracker(0.98, 4.0)
        for step, loss in enumerate(c["raw"][: fastai.size]):
            if loss is None or not tracker.finite(step, 1.0 + step, loss):
                break
            tracker.record(step, 1.0 + step, loss)
        ours = np.array(tracker.curve.smoothed)
        finite = np.isfinite(fastai[: ours.size])
        assert np.allclose(ours[finite], fastai[: ours.size][finite], rtol=1e-5), c["name"]


@dataclass
class Recorded:
    """A curve as lrkit's finder records it (CurveLike)."""

    lrs: list[float]
    smoothed: list[float]
    stop_reason: str

    def suggestion_curve(self, raw: bool = False) -> list[float]:
        return self.smoothed


def test_the_finder_path_gives_fastais_answers_even_after_a_nan_stop() -> None:
    # lrkit stops at a NaN loss without recording it; fastai runs on and cuts at the NaN.
    for c in CURVES:
        lrs = as_float32(c["recorded_lrs"])
        tracker = CurveTracker(0.98, 4.0)
        for step, loss in enumerate(c["raw"][: lrs.size]):
            value = float("nan") if loss is None else loss
            if not tracker.finite(step, float(lrs[step]), value):
                break
            tracker.record(step, float(lrs[step]), value)
        curve = Recorded(tracker.curve.lrs, tracker.curve.smoothed, tracker.curve.stop_reason)
        rules = {name: suggest.METHODS[name] for name in RULES}
        summary = suggest.summarize([curve], rules, num_steps=c["num_it"])
        for name in RULES:
            assert same(summary.suggestions[name], c["fastai"][name]), (c["name"], name)
