"""CUDA-only behaviour (skipped without a GPU): AMP with a GradScaler in the finder, the
finder's exact restore on the device, and the vmapped trainer against plain runs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tests.conftest import make_data, make_model
from torch import nn
from torch.utils.data import DataLoader

import lrkit
from lrkit.train import fit
from lrkit.vectorized import fit_many

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_amp_finder_skips_scaler_overflow_steps_without_recording_them() -> None:
    model = make_model().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(make_data(), batch_size=32, shuffle=True)
    calls = {"n": 0}
    seen_lrs: list[float] = []

    def step(m: nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        seen_lrs.append(opt.param_groups[0]["lr"])
        loss = nn.functional.cross_entropy(m(batch[0]), batch[1])
        if calls["n"] in (3, 4):  # gradients that overflow float16 once scaled: skipped steps
            return loss * 1e30
        return loss

    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = lrkit.find_lr(model, opt, loader, step_fn=step, num_steps=20, end_lr=1e-2, amp=True,
                        diverge_threshold=1e9, progress=False)  # fmt: skip
    assert calls["n"] >= 22  # two extra attempts for the two skipped steps
    assert len(res.lrs) == 20  # every LR recorded exactly once
    assert seen_lrs[2] == seen_lrs[3] == seen_lrs[4]  # a skipped LR is tried again
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_vectorized_members_on_cuda_match_plain_runs() -> None:
    torch.backends.cudnn.deterministic = True
    x, y = make_data(400).tensors
    batches = [(x[i : i + 40].cuda(), y[i : i + 40].cuda()) for i in range(0, 400, 40)]
    lrs = [0.01, 0.05, 0.2]

    def make(seed: int) -> nn.Module:
        return make_model(seed).cuda().double()

    data = [(a.double(), b) for a, b in batches]
    ours = fit_many(make, data, nn.CrossEntropyLoss(), lrs=lrs, seeds=[0, 1, 2], epochs=3,
                    momentum=0.9, progress=False, metrics=())  # fmt: skip
    for member, lr in enumerate(lrs):
        model = make(member)
        ref = fit(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), data,
                  nn.CrossEntropyLoss(), 3, progress=False, metrics=())  # fmt: skip
        assert ours[member].step_loss == pytest.approx(ref.step_loss, rel=1e-9)
