"""Closed-form shapes: exact against PyTorch's schedulers and the published Keras formulas."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as T

from lrkit import schedules as S

N = 1000
REL = 1e-9


def torch_values(
    make: Callable[[torch.optim.Optimizer], Any],
    n: int = N,
    lr: float = 0.1,
    optimizer: str = "sgd",
) -> tuple[list[float], list[float]]:
    """LR and momentum (or beta1) of group 0 at steps 0..n-1 under a PyTorch scheduler."""
    param = torch.nn.Parameter(torch.zeros(1))
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD([param], lr=lr, momentum=0.9)
    else:
        opt = torch.optim.Adam([param], lr=lr)
    sched = make(opt)
    lrs, momenta = [], []
    for _ in range(n):
        group = opt.param_groups[0]
        lrs.append(float(group["lr"]))
        momenta.append(group["momentum"] if "momentum" in group else group["betas"][0])
        opt.step()
        sched.step()
    return lrs, momenta


def assert_close(ours: list[float], theirs: list[float], rel: float = REL) -> None:
    assert len(ours) == len(theirs)
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == pytest.approx(b, rel=rel, abs=1e-300), f"step {t}: {a} != {b}"


def values(sched: S.Schedule, n: int = N) -> list[float]:
    return [sched(t) for t in range(n)]


# ----------------------------------------------------------------------------- vs PyTorch


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            S.step(start_lr=0.1, gamma=0.5, interval_steps=30),
            lambda o: T.StepLR(o, 30, gamma=0.5),
        ),
        (
            S.multistep(start_lr=0.1, gamma=0.3, milestones=[100, 300, 700]),
            lambda o: T.MultiStepLR(o, [100, 300, 700], gamma=0.3),
        ),
        (S.exponential(start_lr=0.1, gamma=0.995), lambda o: T.ExponentialLR(o, gamma=0.995)),
        (
            S.polynomial(max_lr=0.1, min_lr=0.0, total_steps=800, power=2.0),
            lambda o: T.PolynomialLR(o, total_iters=800, power=2.0),
        ),
        (
            S.polynomial(max_lr=0.1, min_lr=0.0, total_steps=N, power=1.0),
            lambda o: T.PolynomialLR(o, total_iters=N, power=1.0),
        ),
        (
            S.sgdr(max_lr=0.1, cycle_steps=50),
            lambda o: T.CosineAnnealingWarmRestarts(o, T_0=50),
        ),
        (
            S.sgdr(max_lr=0.1, cycle_steps=10, cycle_mult=2, min_lr=1e-4),
            lambda o: T.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-4),
        ),
        (
            S.warmup(S.constant(0.1), warmup_steps=100, start_factor=0.1),
            lambda o: T.LinearLR(o, start_factor=0.1, total_iters=100),
        ),
    ],
    ids=[
        "StepLR",
        "MultiStepLR",
        "ExponentialLR",
        "PolynomialLR-2",
        "PolynomialLR-1",
        "WarmRestarts-1",
        "WarmRestarts-2",
        "LinearLR",
    ],
)
def test_matches_pytorch_at_every_step(ours: S.Schedule, theirs: Any) -> None:
    lrs, _ = torch_values(theirs)
    # PolynomialLR reaches exactly 0; compare those points absolutely.
    assert_close(values(ours), lrs, rel=REL)


def test_cosine_is_the_closed_form_of_cosine_annealing() -> None:
    base, min_lr, steps = 0.1, 1e-4, N
    sched = S.cosine(max_lr=base, total_steps=steps, min_lr=min_lr)
    closed = [min_lr + (base - min_lr) * (1 + math.cos(math.pi * t / steps)) / 2 for t in range(N)]
    assert_close(values(sched), closed, rel=1e-12)
    # PyTorch's recursive CosineAnnealingLR tracks it only up to its own drift.
    lrs, _ = torch_values(lambda o: T.CosineAnnealingLR(o, T_max=steps, eta_min=min_lr))
    assert_close(values(sched), lrs, rel=1e-6)
    assert sched(steps) == min_lr and sched(steps + 500) == min_lr


# ----------------------------------------------------------------------------- vs Keras


def test_piecewise_constant_follows_keras_boundaries() -> None:
    s = S.piecewise_constant(boundaries=[100, 110], values=[1.0, 0.5, 0.1])
    expected = [1.0 if t <= 100 else 0.5 if t <= 110 else 0.1 for t in range(200)]
    assert values(s, 200) == expected


def test_polynomial_with_cycle_follows_keras() -> None:
    s = S.polynomial(max_lr=0.1, min_lr=0.01, total_steps=100, power=0.5, cycle=True)
    assert s(0) == pytest.approx(0.1)
    assert s(100) == pytest.approx(0.01)
    assert s(150) == pytest.approx(0.09 * 0.25**0.5 + 0.01)  # horizon 200
    assert s(101) == pytest.approx(0.09 * (1 - 101 / 200) ** 0.5 + 0.01)
    assert s(250) == pytest.approx(0.09 * (1 - 250 / 300) ** 0.5 + 0.01)
    flat = S.polynomial(max_lr=0.1, min_lr=0.01, total_steps=100, power=0.5)
    assert flat(250) == pytest.approx(0.01)


# ----------------------------------------------------------------------------- others


def test_wsd_shapes() -> None:
    for shape, f in [
        ("linear", lambda p: 1 - p),
        ("cosine", lambda p: (1 + math.cos(math.pi * p)) / 2),
        ("sqrt", lambda p: 1 - math.sqrt(p)),
    ]:
        s = S.wsd(
            max_lr=1.0,
            total_steps=100,
            warmup_steps=10,
            decay_frac=0.2,
            decay_shape=shape,
            min_lr=0.1,
        )
        assert s(0) == pytest.approx(0.1)
        assert s(5) == pytest.approx(0.55)
        assert all(s(t) == 1.0 for t in range(10, 80))
        assert s(90) == pytest.approx(0.1 + 0.9 * f(0.5))
        assert s(100) == pytest.approx(0.1) and s(150) == pytest.approx(0.1)


def test_inverse_sqrt() -> None:
    s = S.inverse_sqrt(max_lr=1.0, warmup_steps=100)
    assert s(0) == 0.0 and s(50) == 0.5 and s(100) == 1.0
    assert s(400) == pytest.approx(0.5)


def test_linear_exponential_staircase_and_scale() -> None:
    assert values(S.linear(1.0, 0.0, total_steps=4), 6) == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    e = S.exponential(start_lr=1.0, gamma=0.5, interval_steps=10, staircase=True)
    assert [e(t) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    smooth = S.exponential(start_lr=1.0, gamma=0.5, interval_steps=10)
    assert smooth(5) == pytest.approx(0.5**0.5)
    assert S.scale(S.constant(0.2), 3)(7) == pytest.approx(0.6)


@pytest.mark.parametrize("shape", ["cosine", "linear"])
def test_anneal_goes_between_fractional_knots_and_holds_outside(shape: str) -> None:
    s = S.anneal(start_lr=1.0, end_lr=0.2, end_step=8.5, start_step=-0.5, shape=shape)
    cos = 0.2 + 0.8 * (1 + math.cos(math.pi * 0.5 / 9)) / 2
    assert s(0) == pytest.approx(cos if shape == "cosine" else 1.0 - 0.8 * 0.5 / 9)
    assert s(4) == pytest.approx(0.6)  # the middle, for both shapes
    assert s(9) == s(100) == pytest.approx(0.2)
    later = S.anneal(0.2, 1.0, end_step=10.0, start_step=5.0, shape=shape)
    assert later(0) == later(5) == pytest.approx(0.2)  # flat before its start


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: S.cosine(max_lr=0.1, total_steps=0), "total_steps must be an integer >= 1"),
        (lambda: S.linear(1.0, 0.0, total_steps=-5), "total_steps must be an integer >= 1"),
        (
            lambda: S.piecewise_constant([10, 5], [1.0, 0.5, 0.1]),
            "boundaries must be strictly increasing",
        ),
        (
            lambda: S.piecewise_constant([10, 20], [1.0, 0.5]),
            r"values must be one longer than boundaries",
        ),
        (lambda: S.multistep(0.1, 0.5, [30, 10]), "milestones must be strictly increasing"),
        (lambda: S.multistep(0.1, 0.5, []), "milestones must be a non-empty list"),
        (lambda: S.wsd(max_lr=1.0, total_steps=100, warmup_steps=90), "warmup_steps must be <="),
        (lambda: S.wsd(max_lr=1.0, total_steps=100, decay_shape="exp"), "decay_shape"),
        (lambda: S.exponential(start_lr=0.1, gamma=0.0), "gamma must be a finite number > 0"),
        (lambda: S.cosine(max_lr=0.1, total_steps=10, min_lr=1.0), r"min_lr must be <= max_lr"),
        (
            lambda: S.polynomial(max_lr=0.1, min_lr=0.0, total_steps=10, power=0),
            "power",
        ),
        (
            lambda: S.polynomial(max_lr=0.1, min_lr=0.2, total_steps=10),
            r"min_lr must be <= max_lr \(0.1\)",
        ),
        (lambda: S.anneal(1.0, 0.0, end_step=2.0, start_step=2.0), r"end_step must be > start"),
        (lambda: S.anneal(1.0, 0.0, end_step=2.0, shape="cos"), "shape must be one of"),
    ],
)
def test_bad_parameters_fail_at_construction_naming_the_parameter(
    build: Callable[[], S.Schedule], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()
