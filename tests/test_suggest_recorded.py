"""``auto`` on real range tests recorded for issue 14 (``tests/fixtures/record_curves.py``):
a tiny ViT from scratch with AdamW (100 and 60 steps) and LeNet with plain SGD."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lrkit import suggest

CASES = json.loads((Path(__file__).parent / "fixtures" / "finder_curves.json").read_text())
RUNS = [
    pytest.param(np.array(r["lrs"]), np.array(r["losses"]), id=f"{c['name']}-{r['seed']}")
    for c in CASES["cases"]
    for r in c["runs"]
]


@pytest.mark.parametrize(("lrs", "losses"), RUNS)
def test_auto_is_never_below_start_lr_nor_in_the_sweeps_first_stretch(lrs, losses) -> None:
    got = suggest.auto(lrs, losses)
    head = int(np.ceil(suggest.AUTO_NOISE_HEAD * lrs.size))
    assert got.lr is not None and got.lr >= lrs[head] > lrs[0]


@pytest.mark.parametrize(("lrs", "losses"), [p for p in RUNS if "vit" in p.id])
def test_auto_on_the_vit_does_not_average_in_the_noise_driven_valley(lrs, losses) -> None:
    # Before: the geometric mean with a valley estimate of 6e-6..4e-5 read off the flat,
    # noisy start gave 1.1e-4..4.2e-4; the estimates lie 1.7-2.5 decades apart.
    got = suggest.auto(lrs, losses)
    noisy = suggest.auto(lrs, losses, max_disagreement=99.0)
    assert got.lr is not None and noisy.lr is not None
    if got.caveat is not None:
        assert "disagree" in got.caveat and "set the valley aside" in got.caveat
        assert got.lr > 3 * noisy.lr


@pytest.mark.parametrize(("lrs", "losses"), RUNS)
def test_a_decline_says_what_to_do(lrs, losses) -> None:
    # Cut the sweep before the loss falls (an end_lr too low): no suggestion, with advice.
    flat = lrs < 1e-5
    got = suggest.auto(lrs[flat], losses[flat])
    if got.lr is None:
        assert got.caveat is not None and "rerun find_lr" in got.caveat


def test_auto_sets_aside_an_estimate_from_a_noise_dip_at_the_start() -> None:
    # The failure: the EMA minimum at the sweep's first points (a noise dip).
    case = next(c for c in CASES["cases"] if c["name"] == "vit-60")["runs"][0]
    lrs, losses = np.array(case["lrs"]), np.array(case["losses"])
    losses[0:3] -= 0.08  # a dip in the first points, where the EMA averages 1-3 losses
    got = suggest.auto(lrs, losses)
    assert got.lr is not None and got.lr >= lrs[int(np.ceil(0.1 * lrs.size))]


def test_a_declined_auto_reaches_res_caveats_and_survives_save_and_load(tmp_path) -> None:
    from lrkit.finder import Curve, FinderResult

    case = next(c for c in CASES["cases"] if c["name"] == "vit-100")["runs"][0]
    lrs, losses = case["lrs"][:20], case["losses"][:20]  # the flat start: end_lr too low
    curve = Curve(lrs, losses, losses)
    summary = suggest.summarize([curve], num_steps=100)
    res = FinderResult(
        [curve], summary.suggestions, summary.notes, suggestion_caveats=summary.caveats["auto"]
    )
    assert res.suggestion is None
    assert any("no auto suggestion" in c and "rerun find_lr" in c for c in res.caveats)
    again = FinderResult.load(res.save(tmp_path / "res.json"))
    assert again.caveats == res.caveats


def test_a_custom_rule_that_declines_silently_gets_a_caveat_saying_what_to_do() -> None:
    from lrkit.finder import Curve

    def never(lrs: np.ndarray, losses: np.ndarray) -> suggest.Suggestion:
        return suggest.Suggestion(None, None, "never suggests")

    curve = Curve([1e-3, 1e-2, 1e-1], [1.0, 0.9, 0.8], [1.0, 0.9, 0.8])
    summary = suggest.summarize([curve], {"never": never})
    assert summary.caveats["never"] == [
        "no never suggestion (never suggests): rerun find_lr with more steps or a wider range "
        "(start_lr, end_lr), or read the LR off res.plot()"
    ]
