"""find_lr leaves no trace: model, optimizer and RNGs are restored bit for bit, always."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
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


class CountingLoss(nn.Module):
    """A criterion with state: a learned temperature and a buffer it updates every call."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(()))
        self.register_buffer("calls", torch.zeros(()))
        self.fail_at = fail_at

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_at is not None and self.calls.item() == self.fail_at:
            raise RuntimeError("boom")
        return nn.functional.cross_entropy(outputs / self.temperature, targets)


def tensors(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    return [None if t is None else t.detach().clone() for t in tensors]


def same(a: list[torch.Tensor | None], b: list[torch.Tensor | None]) -> bool:
    return all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
        for x, y in zip(a, b, strict=True)
    )


def test_a_tensor_the_optimizer_holds_outside_the_model_is_restored() -> None:
    # the case: a learned temperature trained by find_lr came back as 2.99, not 1.0
    model = make_model()
    t = nn.Parameter(torch.ones(()))
    opt = torch.optim.SGD([*model.parameters(), t], lr=0.1)

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]) * t, batch[1])

    loader = DataLoader(make_data(), batch_size=16)
    lrkit.find_lr(model, opt, loader, step_fn=step, num_steps=20, progress=False)
    assert torch.equal(t.detach(), torch.ones(())) and t.grad is None
    assert opt.state.get(t) is None


def test_the_criterions_parameters_and_buffers_are_restored() -> None:
    model, loss = make_model(), CountingLoss()
    opt = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=1e-3)
    loader = DataLoader(make_data(), batch_size=16)
    lrkit.find_lr(model, opt, loader, loss, num_steps=10, progress=False)
    assert loss.calls.item() == 0
    assert loss.temperature.item() == 1.0 and loss.temperature.grad is None


def test_existing_grads_outside_the_optimizer_are_not_accumulated_into() -> None:
    model = make_model()
    opt = torch.optim.SGD(model[2].parameters(), lr=0.1)  # the first layer: trainable, not in it
    x, y = make_data()[:16]
    nn.functional.cross_entropy(model(x), y).backward()
    before = tensors(*(p.grad for p in model.parameters()))
    grads = [p.grad for p in model.parameters()]
    loader = DataLoader(make_data(), batch_size=16)
    lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=10, progress=False)
    assert same(before, tensors(*(p.grad for p in model.parameters())))
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(OPTIMIZERS)),
    outside=st.booleans(),
    criterion_trained=st.booleans(),
    subset=st.booleans(),
    grads=st.booleans(),
    fail_at=st.one_of(st.none(), st.integers(1, 9)),
    cache=st.sampled_from(["memory", "disk"]),
)
def test_restore_covers_everything_the_test_can_touch(
    name: str,
    outside: bool,
    criterion_trained: bool,
    subset: bool,
    grads: bool,
    fail_at: int | None,
    cache: str,
) -> None:
    """Tensors held outside the model, a criterion's state and every .grad come back: the
    same objects with the old bits, after a finished or a failed test."""
    model, loss = make_model(batchnorm=True), CountingLoss()
    t = nn.Parameter(torch.full((), 0.5))
    held = [*(model[3].parameters() if subset else model.parameters())]
    held += [t] if outside else []
    held += [*loss.parameters()] if criterion_trained else []
    opt = OPTIMIZERS[name](held)
    every = [*model.parameters(), *loss.parameters(), t]
    if grads:  # .grad everywhere, and optimizer state to lose
        x, y = make_data()[:16]
        (loss(model(x), y) * t).backward()
        opt.step()
        loss.calls.zero_()
    loss.fail_at = fail_at
    state_before = everything(model, opt)
    values, grad_values = tensors(*every), tensors(*(p.grad for p in every))
    grad_objects = [p.grad for p in every]

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        return loss(model(batch[0]), batch[1]) * t

    loader = DataLoader(make_data(seed=3), batch_size=16, shuffle=True)
    kwargs: dict[str, Any] = {"num_steps": 10, "end_lr": 0.1, "progress": False, "cache": cache}
    # a criterion's own error comes wrapped in lrkit's ValueError naming the shapes
    failing = pytest.raises((RuntimeError, ValueError), match="boom")
    with failing if fail_at is not None else contextlib.nullcontext():
        if outside:  # step_fn hides the criterion: only what the optimizer holds is seen
            lrkit.find_lr(model, opt, loader, step_fn=step, **kwargs)
        else:
            lrkit.find_lr(model, opt, loader, loss, **kwargs)
    assert_same(state_before, everything(model, opt))
    hidden = {id(p) for p in loss.parameters()} if outside and not criterion_trained else set()
    keep = [id(p) not in hidden for p in every]
    pick = lambda xs: [x for x, k in zip(xs, keep, strict=True) if k]  # noqa: E731
    assert same(pick(tensors(*every)), pick(values))
    assert same(pick(tensors(*(p.grad for p in every))), pick(grad_values))
    assert all(p.grad is g for p, g in pick(list(zip(every, grad_objects, strict=True))))
    if not outside:
        assert loss.calls.item() == 0


SIGTERM_SCRIPT = """
import os, signal, torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import lrkit

model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
calls = [0]

def step(model, batch):
    calls[0] += 1
    if calls[0] == 3:
        os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler (Slurm, k8s) sends
    return nn.functional.cross_entropy(model(batch[0]), batch[1])

lrkit.find_lr(model, opt, DataLoader(data, batch_size=16), step_fn=step, cache="disk",
              progress=False)
print("survived SIGTERM")
"""


def test_cache_disk_deletes_its_file_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == -signal.SIGTERM, proc.stderr  # it still dies of SIGTERM
    assert "survived" not in proc.stdout
    assert list(tmp_path.glob("lrkit-snapshot-*")) == []


def test_cache_disk_removes_leftovers_of_dead_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f"lrkit-snapshot-{dead.pid}-abc123.pt"
    leftover.write_bytes(b"a snapshot of a SIGKILLed run")
    alive = tmp_path / f"lrkit-snapshot-{os.getppid()}-def456.pt"  # a live process's file
    alive.write_bytes(b"in use")
    other = tmp_path / "lrkit-snapshot-notes.txt"
    other.write_bytes(b"not ours")
    model, opt = prepared("sgd", False, 0, False)
    lrkit.find_lr(model, opt, DataLoader(make_data(), batch_size=16), nn.CrossEntropyLoss(),
                  num_steps=5, cache="disk", progress=False)  # fmt: skip
    assert not leftover.exists()
    assert alive.exists() and other.exists()
    assert sorted(tmp_path.glob("lrkit-snapshot-*")) == sorted([alive, other])  # its own too


def test_the_sigterm_handler_is_put_back_after_the_test() -> None:
    before = signal.getsignal(signal.SIGTERM)
    model, opt = prepared("sgd", False, 0, False)
    lrkit.find_lr(model, opt, DataLoader(make_data(), batch_size=16), nn.CrossEntropyLoss(),
                  num_steps=5, cache="disk", progress=False)  # fmt: skip
    assert signal.getsignal(signal.SIGTERM) == before
