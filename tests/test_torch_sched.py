"""The PyTorch adapter: same numbers as the schedule, groups, momentum, exact resume."""

from __future__ import annotations

import io
import warnings

import numpy as np
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
    for built_with, strict in ((schedule, True), (S.constant(1.0), False)):
        opt2 = sgd(0.1, 0.01)
        # The optimizer loaded first, then the scheduler built: PyTorch's schedulers leave
        # schedule(0) in the groups until the next step; this one writes step k's LR and
        # momentum at once.
        opt2.load_state_dict(saved["opt"])
        sched2 = lrkit.to_torch(opt2, built_with)
        sched2.load_state_dict(saved["sched"], strict=strict)  # strict=False: the saved wins
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
    sched2 = lrkit.to_torch(opt2, S.constant(0.1), momentum=momentum)
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
        sched2.load_state_dict(state, strict=False)
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


# ------------------------------------------------------- every framework's stepping convention


def test_step_with_a_metric_feeds_the_plateau_like_reduce_lr_on_plateau() -> None:
    # Lightning's "reduce_on_plateau": True and ReduceLROnPlateau's convention call
    # step(val_loss); the metric used to be taken as the epoch (LR ~0.06, last_epoch a tensor).
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8]
    ref_opt = sgd(1.0)
    ref = T.ReduceLROnPlateau(ref_opt, factor=0.5, patience=1)
    opt = sgd(1.0)
    sched = lrkit.to_torch(
        opt, S.constant(1.0), plateau=lrkit.ReduceOnPlateau(factor=0.5, patience=1)
    )
    for m in metrics:
        ref_opt.step()
        ref.step(m)
        opt.step()
        sched.step(torch.tensor(m))  # Lightning passes the logged tensor
        assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    assert opt.param_groups[0]["lr"] == 0.125
    assert sched.last_epoch == len(metrics) and type(sched.last_epoch) is int
    assert sched.get_last_lr() == [0.125]


def test_step_with_a_metric_advances_the_schedule_and_skips_the_warmup() -> None:
    schedule = S.warmup(S.constant(1.0), warmup_steps=3, start_factor=0.0)
    opt = sgd(1.0)
    sched = lrkit.to_torch(opt, schedule, plateau=lrkit.ReduceOnPlateau(factor=0.5, patience=0))
    lrs = []
    for _ in range(6):
        opt.step()
        sched.step(1.0)  # never improves after the first report that counts
        lrs.append(opt.param_groups[0]["lr"])
    # warmup (reports ignored), then 1.0 (first report sets the best), then halvings
    assert lrs == [1 / 3, 2 / 3, 1.0, 0.5, 0.25, 0.125]


@pytest.mark.parametrize("metric", [0.53, torch.tensor(0.53), np.float64(0.53), torch.tensor(1.0)])
def test_a_metric_without_a_plateau_is_refused_not_taken_as_an_epoch(metric: object) -> None:
    opt = sgd(0.5)
    sched = lrkit.to_torch(opt, S.cosine(max_lr=0.5, total_steps=100))
    opt.step()
    with pytest.raises(ValueError, match=r"not an epoch number.*plateau=lrkit\.ReduceOnPlateau"):
        sched.step(metric)
    assert opt.param_groups[0]["lr"] == 0.5 and sched.last_epoch == 0


def test_an_integer_epoch_is_still_pytorchs_deprecated_step_epoch() -> None:
    opt = sgd(0.5)
    schedule = S.cosine(max_lr=0.5, total_steps=100)
    sched = lrkit.to_torch(opt, schedule)
    opt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(np.int64(50))
    assert sched.last_epoch == 50 and opt.param_groups[0]["lr"] == schedule(50)


def test_lightning_reduce_on_plateau_config_drives_the_plateau() -> None:
    pl = pytest.importorskip("lightning.pytorch", reason="lightning is not installed")
    losses = [1.0, 0.5, 0.5, 0.5, 0.5]  # the val_loss of each epoch

    class Module(pl.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.seen: list[float] = []

        def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
            self.seen.append(float(self.optimizers().param_groups[0]["lr"]))
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
            self.log("val_loss", losses[self.current_epoch])

        def configure_optimizers(self) -> dict[str, object]:
            opt = torch.optim.SGD(self.parameters(), lr=1.0)
            plateau = lrkit.ReduceOnPlateau(factor=0.5, patience=1)
            sched = lrkit.to_torch(opt, S.constant(1.0), plateau=plateau)
            config = {"scheduler": sched, "monitor": "val_loss", "reduce_on_plateau": True}
            return {"optimizer": opt, "lr_scheduler": config}

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(2, 1)))
    module = Module()
    trainer = pl.Trainer(
        max_epochs=len(losses), logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's own advice (workers, log batch size)
        trainer.fit(module, data, data)
    # val_loss 1.0 and 0.5 improve, then two epochs without: halved after epoch 3 (patience 1)
    assert module.seen[::2] == [1.0, 1.0, 1.0, 1.0, 0.5]


# ---------------------------------------------------------------------------------- resume


def checkpoint_at(schedule: S.Schedule, k: int) -> dict[str, object]:
    opt = sgd(0.1)
    sched = lrkit.to_torch(opt, schedule)
    drive(opt, sched, k)
    return {"opt": opt.state_dict(), "sched": sched.state_dict()}


def test_resuming_with_a_changed_schedule_is_refused_by_default() -> None:
    saved = checkpoint_at(S.one_cycle(max_lr=0.1, total_steps=100), 40)
    opt = sgd(0.1)
    opt.load_state_dict(saved["opt"])  # type: ignore[arg-type]
    sched = lrkit.to_torch(opt, S.one_cycle(max_lr=0.2, total_steps=100))
    with pytest.raises(ValueError, match=r"differs.*schedule one_cycle\(max_lr=0.1.*strict=False"):
        sched.load_state_dict(saved["sched"])  # type: ignore[arg-type]


def test_strict_false_takes_the_checkpoints_lr_and_momentum_together() -> None:
    # Resuming with a changed schedule used to follow the checkpoint's LR and the new
    # schedule's momentum.
    old = S.one_cycle(max_lr=0.1, total_steps=100)
    new = S.cyclic(min_lr=0.01, max_lr=0.05, up_steps=10)
    saved = checkpoint_at(old, 40)
    opt = sgd(0.1)
    sched = lrkit.to_torch(opt, new)
    opt.load_state_dict(saved["opt"])  # type: ignore[arg-type]
    sched.load_state_dict(saved["sched"], strict=False)  # type: ignore[arg-type]
    momentum = old.momentum_schedule()
    rows = drive_with_momentum(opt, sched, 30)
    assert rows == [([old(t)], [momentum(t)]) for t in range(40, 70)]


def test_load_state_dict_writes_the_restored_lr_into_the_groups() -> None:
    schedule = S.warmup(S.cosine(max_lr=0.1, total_steps=100), warmup_steps=10)
    saved = checkpoint_at(schedule, 30)
    opt = sgd(0.1)  # a fresh optimizer (weights only were kept): its LR is 0.1
    sched = lrkit.to_torch(opt, schedule)
    sched.load_state_dict(saved["sched"])  # type: ignore[arg-type]
    assert opt.param_groups[0]["lr"] == schedule(30) == sched.get_last_lr()[0]


# ---------------------------------------------------------------- timm's lr_scale per group


def test_each_groups_lr_scale_multiplies_its_lr_and_leaves_momentum_alone() -> None:
    # timm's layer decay: groups share one LR and carry lr_scale; its schedulers set
    # lr = value * lr_scale (timm/scheduler/scheduler.py, update_groups).
    scales = [0.75**3, 0.75**2, 0.75, 1.0]
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr_scale": s} for s in scales]
    opt = torch.optim.SGD(groups, lr=1e-3, momentum=0.9)
    schedule = S.one_cycle(max_lr=1e-3, total_steps=50)
    sched = lrkit.to_torch(opt, schedule)
    for t, (lrs, moms) in enumerate(drive_with_momentum(opt, sched, 50)):
        assert lrs == pytest.approx([schedule(t) * s for s in scales], rel=1e-15)
        assert moms == [schedule.momentum_schedule()(t)] * 4


def test_lr_scale_survives_a_plateau_reduction() -> None:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr_scale": s} for s in (0.5, 1.0)]
    opt = torch.optim.SGD(groups, lr=1.0)
    sched = lrkit.to_torch(
        opt, S.constant(1.0), plateau=lrkit.ReduceOnPlateau(factor=0.1, patience=0)
    )
    for m in (1.0, 1.0, 1.0):
        opt.step()
        sched.step(m)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005, 0.01])
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005, 0.01])
