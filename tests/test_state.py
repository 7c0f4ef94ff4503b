"""find_lr leaves no trace: model, optimizer and RNGs are restored bit for bit, always."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import make_data, make_model
from torch import nn
from torch.utils.data import DataLoader

import lrkit

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05),
    "sgd-nesterov": lambda p: torch.optim.SGD(
        p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4
    ),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
    "nadam": lambda p: torch.optim.NAdam(p, lr=2e-3),
}


def everything(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """A deep copy of every observable bit of state."""
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "modes": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "opt_state": {  # .get, not [], which would insert into the defaultdict
            i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
            for i, s in enumerate(opt.state.get(p) for p in model.parameters())
            if s is not None
        },
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
        "group_params": [list(g["params"]) for g in opt.param_groups],
        "torch_rng": torch.get_rng_state(),
        "np_rng": np.random.get_state()[1].copy(),  # noqa: NPY002
        "py_rng": random.getstate(),
    }


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for x, y in zip(a["params"] + a["buffers"], b["params"] + b["buffers"], strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)
    for x, y in zip(a["grads"], b["grads"], strict=True):
        assert (x is None and y is None) or torch.equal(x, y)
    assert a["modes"] == b["modes"]
    assert a["requires_grad"] == b["requires_grad"]
    assert a["opt_state"].keys() == b["opt_state"].keys()
    for i in a["opt_state"]:
        sa, sb = a["opt_state"][i], b["opt_state"][i]
        assert sa.keys() == sb.keys()
        for k in sa:
            if torch.is_tensor(sa[k]):
                assert torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype
            else:
                assert sa[k] == sb[k]
    assert a["groups"] == b["groups"]
    assert all(
        all(p is q for p, q in zip(ga, gb, strict=True))
        for ga, gb in zip(a["group_params"], b["group_params"], strict=True)
    )
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert np.array_equal(a["np_rng"], b["np_rng"])
    assert a["py_rng"] == b["py_rng"]


def prepared(name: str, batchnorm: bool, warm_steps: int, eval_mode: bool) -> tuple[Any, Any]:
    model = make_model(batchnorm=batchnorm)
    opt = OPTIMIZERS[name](model.parameters())
    data = make_data()
    for i in range(warm_steps):  # give the optimizer real state to lose
        opt.zero_grad()
        x, y = data[i * 16 : (i + 1) * 16]
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    if eval_mode:
        model.eval()
    model[0].bias.requires_grad_(False)  # a frozen parameter must stay frozen
    return model, opt


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(OPTIMIZERS)),
    batchnorm=st.booleans(),
    warm_steps=st.integers(0, 3),
    eval_mode=st.booleans(),
    fail_at=st.one_of(st.none(), st.integers(1, 19)),
    cache=st.sampled_from(["memory", "disk"]),
    runs=st.integers(1, 2),
)
def test_restore_is_bit_exact(
    name: str,
    batchnorm: bool,
    warm_steps: int,
    eval_mode: bool,
    fail_at: int | None,
    cache: str,
    runs: int,
) -> None:
    model, opt = prepared(name, batchnorm, warm_steps, eval_mode)
    before = everything(model, opt)
    state_objects = {id(v) for s in opt.state.values() for v in s.values() if torch.is_tensor(v)}
    calls = {"n": 0}

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        if fail_at is not None and calls["n"] == fail_at:
            raise RuntimeError("boom")
        if calls["n"] == 2:  # a step function that (un)freezes must not leak it
            model[0].bias.requires_grad_(True)
            model[0].weight.requires_grad_(False)
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    loader = DataLoader(make_data(seed=2), batch_size=16, shuffle=True)
    failing = pytest.raises(RuntimeError, match="boom")
    with failing if fail_at is not None else contextlib.nullcontext():
        lrkit.find_lr(
            model, opt, loader, step_fn=step, num_steps=20, end_lr=0.1, runs=runs, cache=cache,  # type: ignore[arg-type]
            progress=False,
        )  # fmt: skip
    assert_same(before, everything(model, opt))
    # Same objects, not look-alikes: references the user holds stay live.
    after_objects = {id(v) for s in opt.state.values() for v in s.values() if torch.is_tensor(v)}
    assert after_objects == state_objects


def test_restore_after_keyboard_interrupt() -> None:
    model, opt = prepared("adam", True, 2, False)
    before = everything(model, opt)
    calls = {"n": 0}

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    loader = DataLoader(make_data(), batch_size=16, shuffle=True)
    with pytest.raises(KeyboardInterrupt):
        lrkit.find_lr(model, opt, loader, step_fn=step, progress=False)
    assert_same(before, everything(model, opt))


def test_seeded_run_still_restores_the_callers_rng() -> None:
    model, opt = prepared("sgd", False, 0, False)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    loader = DataLoader(make_data(), batch_size=16, shuffle=True)
    lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), seed=7, num_steps=10, progress=False)
    assert torch.equal(torch.rand(3), expected_next)


def test_a_second_find_after_the_first_sees_the_same_model() -> None:
    model, opt = prepared("sgd-nesterov", True, 1, False)
    loader = DataLoader(make_data(), batch_size=16, shuffle=True)
    a = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), seed=1, progress=False)
    b = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), seed=1, progress=False)
    assert a.losses == b.losses


def test_scheduler_attached_to_the_optimizer_is_untouched() -> None:
    model, opt = prepared("sgd", False, 0, False)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    before_sched = sched.state_dict()
    before = everything(model, opt)
    loader = DataLoader(make_data(), batch_size=16)
    lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=10, progress=False)
    assert_same(before, everything(model, opt))
    assert sched.state_dict() == before_sched
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
