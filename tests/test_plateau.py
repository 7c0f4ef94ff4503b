"""ReduceOnPlateau: the same LRs as PyTorch's ReduceLROnPlateau on the same metrics."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as T

import lrkit
from lrkit import schedules as S


def torch_plateau_lrs(metrics: list[float], **kwargs: object) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = T.ReduceLROnPlateau(opt, **kwargs)  # type: ignore[arg-type]
    out = []
    for metric in metrics:
        opt.step()
        sched.step(metric)
        out.append(opt.param_groups[0]["lr"])
    return out


def ours_lrs(metrics: list[float], **kwargs: object) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lrkit.to_torch(opt, S.constant(1.0), plateau=lrkit.ReduceOnPlateau(**kwargs))  # type: ignore[arg-type]
    out = []
    for metric in metrics:
        opt.step()
        sched.report(metric)
        out.append(opt.param_groups[0]["lr"])
    return out


SCRIPTED = [1.0, 0.9, 0.95, 0.95, 0.95, 0.94, 0.96, 0.97, 0.80, 0.81, 0.82, 0.83, 0.84, 0.85]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patience": 2},
        {"patience": 0, "factor": 0.5},
        {"patience": 1, "cooldown": 2, "factor": 0.5},
        {"patience": 1, "threshold": 0.1, "threshold_mode": "abs"},
        {"patience": 1, "mode": "max"},
        {"patience": 0, "factor": 0.1, "min_lr": 0.05},
    ],
)
def test_matches_reducelronplateau_on_a_scripted_sequence(kwargs: dict[str, object]) -> None:
    ours = ours_lrs(SCRIPTED, **kwargs)
    assert ours == pytest.approx(torch_plateau_lrs(SCRIPTED, **kwargs), rel=1e-12)
    assert ours[-1] < 1.0 or kwargs.get("mode") == "max"  # the sequence does plateau


@settings(max_examples=60, deadline=None)
@given(
    metrics=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=40),
    patience=st.integers(0, 4),
    cooldown=st.integers(0, 3),
    factor=st.floats(0.1, 0.9),
    mode=st.sampled_from(["min", "max"]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    threshold=st.floats(0.0, 0.2),
    min_lr=st.sampled_from([0.0, 1e-3]),
)
def test_matches_reducelronplateau_on_any_sequence(metrics: list[float], **kwargs: object) -> None:
    assert ours_lrs(metrics, **kwargs) == pytest.approx(
        torch_plateau_lrs(metrics, **kwargs), rel=1e-12
    )


def test_warmup_first_then_plateau_control() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lrkit.to_torch(
        opt,
        S.warmup(S.constant(0.1), warmup_steps=5),
        plateau=lrkit.ReduceOnPlateau(patience=0, factor=0.5),
    )
    lrs = []
    for t in range(10):
        opt.step()
        sched.step()
        reduced = sched.report(1.0)  # never improves after the first report
        assert not reduced or t >= 5
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:4] == pytest.approx(
        [S.warmup(S.constant(0.1), warmup_steps=5)(t + 1) for t in range(4)]
    )
    # first counted report sets the best; each later one halves the LR
    assert lrs[4:] == pytest.approx([0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125])


def test_report_without_plateau_is_an_error() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(RuntimeError, match="plateau"):
        lrkit.to_torch(opt, S.constant(0.1)).report(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"factor": 1.0}, "factor"),
        ({"mode": "lowest"}, "mode"),
        ({"threshold_mode": "pct"}, "threshold_mode"),
        ({"patience": -1}, "patience"),
        ({"cooldown": 1.5}, "cooldown"),
        ({"min_lr": -1.0}, "min_lr"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lrkit.ReduceOnPlateau(**kwargs)  # type: ignore[arg-type]


def test_state_round_trips() -> None:
    p = lrkit.ReduceOnPlateau(patience=1)
    for m in (3.0, 2.0, 2.5):
        p.update(m, [1.0])
    q = lrkit.ReduceOnPlateau(patience=1)
    q.load_state_dict(p.state_dict())
    assert q == p
    assert q.update(2.6, [1.0]) == p.update(2.6, [1.0])
