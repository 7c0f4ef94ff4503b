"""find_lr(accelerator=...) against the real accelerate, on CPU: backward goes through
accelerator.backward (so a GradScaler works and a step it skips is not a point), the
scaler's state is restored, and a gradient-sync-off window is refused.

accelerate creates no GradScaler for fp16 on CPU; the scaler tests attach a real CPU
``torch.amp.GradScaler`` as accelerate does on a GPU. Real fp16 autocast with accelerate's own
scaler needs a CUDA device: that test skips without one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from tests.conftest import make_data, make_model
from torch import nn
from torch.utils.data import DataLoader

accelerate = pytest.importorskip("accelerate", reason="needs lrkit[hf]")

from accelerate.state import AcceleratorState, GradientState  # noqa: E402

import lrkit  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    """accelerate keeps one process-wide state; each test builds its own Accelerator."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def prepared(
    mixed_precision: str = "no", init_scale: float | None = None, **kwargs: object
) -> tuple[object, nn.Module, torch.optim.Optimizer, DataLoader]:
    acc = accelerate.Accelerator(cpu=True, mixed_precision=mixed_precision, **kwargs)
    if init_scale is not None:
        acc.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(make_data(), batch_size=32, shuffle=True)
    model, opt, loader = acc.prepare(model, opt, loader)
    return acc, model, opt, loader


def plain_range_test() -> lrkit.FinderResult:
    """The same range test without accelerate: the reference the accelerated runs must match."""
    plain = make_model()
    return lrkit.find_lr(plain, torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9),
                         DataLoader(make_data(), batch_size=32, shuffle=True),
                         nn.CrossEntropyLoss(), num_steps=30, seed=0, progress=False)  # fmt: skip


def test_backward_goes_through_the_accelerator_scaler() -> None:
    acc, model, opt, loader = prepared(init_scale=2.0**10)
    # before: loss.backward() unscaled, then the scaler's step: "Attempted step but _scale is None"
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=30, seed=0,
                        accelerator=acc, progress=False)  # fmt: skip
    ref = plain_range_test()
    assert len(res.curves[0].lrs) == len(ref.curves[0].lrs)
    assert res.curves[0].losses == pytest.approx(ref.curves[0].losses, rel=1e-4)


def test_steps_the_scaler_skips_are_retried_not_recorded_and_the_scaler_is_restored() -> None:
    acc, model, opt, loader = prepared(init_scale=2.0**127)  # the first scaled grads overflow
    scales: list[float] = []
    update = acc.scaler.update

    def spy(*args: object) -> None:
        update(*args)
        scales.append(acc.scaler.get_scale())

    acc.scaler.update = spy
    before = acc.scaler.state_dict()
    ce = nn.CrossEntropyLoss()
    res = lrkit.find_lr(model, opt, loader, lambda out, y: ce(out, y) * 64, num_steps=20,
                        seed=0, end_lr=1e-3, accelerator=acc, progress=False)  # fmt: skip
    curve = res.curves[0]
    assert len(scales) > 20 and scales[0] < 2.0**127  # some steps were skipped...
    assert len(curve.lrs) == 20  # ...and retried: every LR got one real step
    assert curve.lrs == sorted(set(curve.lrs))  # no LR recorded twice
    assert acc.scaler.state_dict() == before


def test_bf16_runs_and_restores_the_model() -> None:
    acc, model, opt, loader = prepared("bf16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=20, seed=0,
                        accelerator=acc, progress=False)  # fmt: skip
    assert len(res.curves[0].lrs) == 20
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_accelerators_accumulation_does_not_shrink_the_finders_gradients() -> None:
    acc, model, opt, loader = prepared(gradient_accumulation_steps=4)
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=30, seed=0,
                        accelerator=acc, progress=False)  # fmt: skip
    ref = plain_range_test()
    assert res.curves[0].losses == pytest.approx(ref.curves[0].losses, rel=1e-5)


def test_refuses_to_run_inside_a_sync_off_accumulate_window() -> None:
    acc, model, opt, loader = prepared(gradient_accumulation_steps=4)
    batch = next(iter(loader))
    with acc.accumulate(model):  # the first micro-batch of 4: gradients are not synced
        assert not acc.sync_gradients
        with pytest.raises(RuntimeError, match="gradient-sync-off window"):
            lrkit.find_lr(model, opt, [batch], nn.CrossEntropyLoss(), accelerator=acc,
                          progress=False)  # fmt: skip


def test_refuses_an_unprepared_optimizer_when_the_accelerator_scales() -> None:
    acc, model, _, loader = prepared(init_scale=2.0**10)
    raw = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"accelerator\.prepare"):
        lrkit.find_lr(model, raw, loader, nn.CrossEntropyLoss(), accelerator=acc, progress=False)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="fp16 with accelerate's scaler needs CUDA"
)
def test_fp16_on_cuda_with_accelerates_own_scaler() -> None:  # pragma: no cover - GPU only
    acc = accelerate.Accelerator(mixed_precision="fp16")
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(make_data(), batch_size=32, shuffle=True)
    model, opt, loader = acc.prepare(model, opt, loader)
    assert acc.scaler is not None
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=30, seed=0,
                        accelerator=acc, progress=False)  # fmt: skip
    assert len(res.curves[0].lrs) == 30
