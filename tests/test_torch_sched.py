"""The PyTorch adapter: same numbers as the schedule, groups, momentum, exact resume."""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_schedules import any_schedule
from torch.optim import lr_scheduler as T

import lrkit
from lrkit import schedules as S


def sgd(*lrs: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)


def drive(opt: torch.optim.Optimizer, sched: T.LRScheduler, n: int) -> list[list[float]]:
    out = []
    for _ in range(n):
        out.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def test_adapter_is_a_real_lrscheduler_following_the_schedule() -> None:
    schedule = S.one_cycle(max_lr=0.5, total_steps=500)
    opt = sgd(0.5)
    sched = lrkit.to_torch(opt, schedule)
    assert isinstance(sched, T.LRScheduler)
    assert sched.get_last_lr() == [schedule(0)]
    lrs = [row[0] for row in drive(opt, sched, 500)]
    assert lrs == [schedule(t) for t in range(500)]


def test_adapter_applies_momentum_to_sgd_and_adam_beta1_like_onecyclelr() -> None:
    for make in (
        lambda: sgd(0.1),
        lambda: torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1, betas=(0.9, 0.99)),
    ):
        ours_opt, ref_opt = make(), make()
        ours = lrkit.to_torch(ours_opt, S.one_cycle(max_lr=0.1, total_steps=300))
        ref = T.OneCycleLR(ref_opt, max_lr=0.1, total_steps=300)
        for _ in range(299):
            a, b = ours_opt.param_groups[0], ref_opt.param_groups[0]
            assert a["lr"] == pytest.approx(b["lr"], rel=1e-12)
            key = "momentum" if "momentum" in a else "betas"
            assert a[key] == pytest.approx(b[key], rel=1e-12)
            if key == "betas":
                assert a["betas"][1] == 0.99
            for o, s in ((ours_opt, ours), (ref_opt, ref)):
                o.step()
                s.step()


def test_param_groups_keep_their_ratio_to_the_largest() -> None:
    schedule = S.cosine(max_lr=1.0, total_steps=100)
    opt = sgd(0.01, 0.1)
    rows = drive(opt, lrkit.to_torch(opt, schedule), 100)
    for t, (lo, hi) in enumerate(rows):
        assert hi == pytest.approx(schedule(t), rel=1e-15)
        assert lo == pytest.approx(0.1 * schedule(t), rel=1e-12)


def test_scale_groups_false_gives_every_group_the_schedule() -> None:
    schedule = S.linear(1.0, 0.0, total_steps=10)
    opt = sgd(0.01, 0.1)
    rows = drive(opt, lrkit.to_torch(opt, schedule, scale_groups=False), 10)
    assert all(lo == hi == schedule(t) for t, (lo, hi) in enumerate(rows))


def test_spec_strings_are_accepted() -> None:
    opt = sgd(0.1)
    sched = lrkit.to_torch(opt, "warmup(cosine(max_lr=0.1, total_steps=100), warmup_steps=10)")
    assert sched.schedule == S.warmup(S.cosine(max_lr=0.1, total_steps=100), warmup_steps=10)


def test_momentum_schedule_needs_momentum_or_betas() -> None:
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="momentum=False"):
        lrkit.to_torch(opt, S.one_cycle(max_lr=0.1, total_steps=100))
    lrkit.to_torch(opt, S.one_cycle(max_lr=0.1, total_steps=100), momentum=False)
    assert "momentum" not in opt.param_groups[0]


def test_momentum_false_leaves_momentum_alone_and_custom_momentum_is_applied() -> None:
    opt = sgd(0.1, momentum=0.5)
    sched = lrkit.to_torch(opt, S.one_cycle(max_lr=0.1, total_steps=100), momentum=False)
    drive(opt, sched, 10)
    assert opt.param_groups[0]["momentum"] == 0.5
    opt = sgd(0.1)
    sched = lrkit.to_torch(opt, S.constant(0.1), momentum=S.linear(0.5, 0.9, total_steps=4))
    drive(opt, sched, 2)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.7)


def momenta(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["momentum"]) for g in opt.param_groups]


def drive_with_momentum(
    opt: torch.optim.Optimizer, sched: T.LRScheduler, n: int
) -> list[tuple[list[float], list[float]]]:
    out = []
    for _ in range(n):
        out.append(([float(g["lr"]) for g in opt.param_groups], momenta(opt)))
        opt.step()
        sched.step()
    return out


@settings(max_examples=40, deadline=None)
@given(schedule=any_schedule(), k=st.integers(0, 300), m=st.integers(1, 200))
def test_state_dict_resume_continues_identically(schedule: S.Schedule, k: int, m: int) -> None:
    opt = sgd(0.1, 0.01)
    sched = lrkit.to_torch(opt, schedule)
    drive(opt, sched, k)
    buffer = io.BytesIO()
    torch.save({"sched": sched.state_dict(), "opt": opt.state_dict()}, buffer)
    expected = drive_with_momentum(opt, sched, m)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # plain data only
    opt2 = sgd(0.1, 0.01)
    opt2.load_state_dict(saved["opt"])
    sched2 = lrkit.to_torch(opt2, S.constant(1.0))  # a different schedule: the state wins
    sched2.load_state_dict(saved["sched"])
    for g, lr, mom in zip(opt2.param_groups, *expected[0], strict=True):
        g["lr"], g["momentum"] = lr, mom  # the optimizer state holds the LR of step k
    assert sched2.schedule == schedule
    # The momentum schedule comes back from its spec too (0.1 saved one that did not parse).
    assert sched2.momentum == schedule.momentum_schedule()
    assert drive_with_momentum(opt2, sched2, m) == expected


def test_a_custom_momentum_schedule_survives_the_state_dict() -> None:
    opt = sgd(0.1)
    momentum = S.linear(0.5, 0.9, total_steps=4)
    sched = lrkit.to_torch(opt, S.constant(0.1), momentum=momentum)
    state = sched.state_dict()
    assert state["momentum"] == momentum.to_spec()
    opt2 = sgd(0.1)
    sched2 = lrkit.to_torch(opt2, S.constant(0.1))
    sched2.load_state_dict(state)
    assert sched2.momentum == momentum


def test_a_state_dict_of_lrkit_0_1_still_loads() -> None:
    # 0.1 wrote one-cycle's momentum as the spec of a private class, which never parsed, and
    # the schedule's parameters under the old names.
    opt = sgd(0.1)
    sched = lrkit.to_torch(opt, S.one_cycle(max_lr=0.1, total_steps=100))
    state = sched.state_dict()
    state["schedule"] = {"name": "warmup", "steps": 5, "schedule": state["schedule"]}
    state["momentum"] = "(knots=[[29.0, 0.85], [99.0, 0.95]], start_value=0.95, anneal='cos')"
    sched2 = lrkit.to_torch(sgd(0.1), S.constant(1.0))
    with pytest.warns(DeprecationWarning, match="use warmup_steps="):
        sched2.load_state_dict(state)
    expected = S.warmup(S.one_cycle(max_lr=0.1, total_steps=100), warmup_steps=5)
    assert sched2.schedule == expected
    assert sched2.momentum == expected.momentum_schedule()


def test_no_warnings_in_normal_use() -> None:
    # pytest turns warnings into errors here, so this would fail on any of PyTorch's
    # "scheduler stepped before optimizer" or deprecation warnings.
    opt = sgd(0.1)
    sched = lrkit.to_torch(opt, S.one_cycle(max_lr=0.1, total_steps=20))
    drive(opt, sched, 20)
    assert sched.last_epoch == 20
