"""Cycles: one-cycle, cyclic and SGDR against PyTorch (bit for bit) and Keras, with momentum."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from tests.test_schedules_shapes import N, assert_close, torch_values, values
from torch.optim import lr_scheduler as T

from lrkit import schedules as S


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize("down", [None, 50])
def test_cyclic_matches_cycliclr_with_momentum(mode: str, down: int | None) -> None:
    ours = S.cyclic(
        min_lr=0.001,
        max_lr=0.1,
        up_steps=100,
        down_steps=down,
        mode=mode,
        gamma=0.999,
    )
    lrs, momenta = torch_values(
        lambda o: T.CyclicLR(
            o,
            base_lr=0.001,
            max_lr=0.1,
            step_size_up=100,
            step_size_down=down,
            mode=mode,
            gamma=0.999,
            cycle_momentum=True,
            base_momentum=0.8,
            max_momentum=0.9,
        )
    )
    assert_close(values(ours), lrs)
    momentum = ours.momentum_schedule()
    assert momentum is not None
    assert_close(values(momentum), momenta)
    # Not only close: the same floating-point numbers, the momentum (an inverted cyclic) too.
    assert values(ours) == lrs and values(momentum) == momenta


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_cycle_matches_onecyclelr_with_momentum_and_betas(
    anneal: str, three_phase: bool, optimizer: str
) -> None:
    ours = S.one_cycle(max_lr=0.5, total_steps=N, anneal=anneal, three_phase=three_phase)
    lrs, momenta = torch_values(
        lambda o: T.OneCycleLR(
            o, max_lr=0.5, total_steps=N, anneal_strategy=anneal, three_phase=three_phase
        ),
        optimizer=optimizer,
    )
    assert_close(values(ours), lrs)
    momentum = ours.momentum_schedule()
    assert_close(values(momentum), momenta)
    assert values(ours) == lrs and values(momentum) == momenta  # bit for bit


@pytest.mark.parametrize(("total_steps", "pct_start"), [(777, 0.25), (777, 0.3), (13, 0.45)])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_with_knots_between_steps_is_bit_for_bit_onecyclelr(
    total_steps: int, pct_start: float, three_phase: bool
) -> None:
    # pct_start * total_steps is not whole: the phases of OneCycleLR end between two steps.
    kwargs = {"max_lr": 3e-3, "total_steps": total_steps, "pct_start": pct_start}
    ours = S.one_cycle(**kwargs, three_phase=three_phase)  # type: ignore[arg-type]
    lrs, momenta = torch_values(
        lambda o: T.OneCycleLR(o, **kwargs, three_phase=three_phase),  # type: ignore[arg-type]
        n=total_steps,
    )
    assert values(ours, total_steps) == lrs
    assert values(ours.momentum_schedule(), total_steps) == momenta


def test_one_cycle_custom_factors_match() -> None:
    ours = S.one_cycle(
        max_lr=3e-3, total_steps=777, pct_start=0.25, div_factor=10, final_div_factor=100
    )
    lrs, _ = torch_values(
        lambda o: T.OneCycleLR(
            o, max_lr=3e-3, total_steps=777, pct_start=0.25, div_factor=10, final_div_factor=100
        ),
        n=777,
    )
    assert_close(values(ours, 777), lrs)


def test_one_cycle_is_a_join_of_public_anneals() -> None:
    s = S.one_cycle(max_lr=0.1, total_steps=1000)
    for curve in (s.lr_phases, s.momentum_schedule()):
        assert isinstance(curve, S.Join)
        assert all(isinstance(p, S.Anneal) for p in curve.schedules)
        assert curve.boundaries == (300,)
    assert s.momentum_schedule().to_spec() == (
        "join(schedules=[anneal(start_lr=0.95, end_lr=0.85, end_step=299.0), "
        "anneal(start_lr=0.85, end_lr=0.95, end_step=699.0, start_step=-1.0)], "
        "boundaries=[300])"
    )
    assert s.to_spec() == "one_cycle(max_lr=0.1, total_steps=1000)"  # derived: not in the spec
    assert s.start_lr == pytest.approx(0.004) and s.min_lr == pytest.approx(4e-7)
    with pytest.warns(DeprecationWarning, match="use start_lr"):
        assert s.initial_lr == s.start_lr


def test_cyclic_momentum_is_the_inverted_cyclic() -> None:
    s = S.cyclic(min_lr=0.01, max_lr=0.1, up_steps=10, mode="triangular2")
    m = s.momentum_schedule()
    assert m == S.cyclic(0.8, 0.9, up_steps=10, mode="triangular2", inverted=True)
    assert m(0) == 0.9 and m(10) == 0.8 and m(30) == pytest.approx(0.85)


def test_sgdr_decay_is_keras_cosine_decay_restarts_m_mul() -> None:
    # Keras CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5, alpha=0):
    # cycle i lasts 10 * 2**i steps and peaks at 0.5**i.
    s = S.sgdr(max_lr=1.0, cycle_steps=10, cycle_mult=2.0, cycle_decay=0.5)

    def keras(t: int) -> float:
        start, length, peak = 0, 10, 1.0
        while t >= start + length:
            start, length, peak = start + length, length * 2, peak * 0.5
        return peak * 0.5 * (1 + math.cos(math.pi * (t - start) / length))

    assert [s(t) for t in (0, 5, 10, 20, 30, 70)] == pytest.approx(
        [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    )
    assert_close(values(s, 500), [keras(t) for t in range(500)], rel=1e-12)


def test_sgdr_with_fractional_cycle_mult_restarts_at_the_right_steps() -> None:
    s = S.sgdr(max_lr=1.0, cycle_steps=10, cycle_mult=1.5)
    starts = [0.0]
    length = 10.0
    while starts[-1] < 300:
        starts.append(starts[-1] + length)
        length *= 1.5
    for t in range(300):
        i = max(k for k, st_ in enumerate(starts) if st_ <= t)
        assert s.cycle_at(t)[0] == i


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: S.one_cycle(max_lr=0.1, total_steps=100, pct_start=1.0),
            r"pct_start must be in \(0, 1\)",
        ),
        (lambda: S.one_cycle(max_lr=0.1, total_steps=100, pct_start=0.0), "pct_start"),
        (lambda: S.one_cycle(max_lr=0.1, total_steps=0), "total_steps"),
        (
            lambda: S.one_cycle(max_lr=0.1, total_steps=100, anneal="cosine"),
            "anneal must be one of",
        ),
        (
            lambda: S.one_cycle(max_lr=0.1, total_steps=100, min_momentum=0.99),
            "min_momentum must be in",
        ),
        (lambda: S.cyclic(min_lr=0.1, max_lr=0.01), r"max_lr must be >= min_lr \(0.1\)"),
        (lambda: S.cyclic(min_lr=0.001, max_lr=0.01, mode="tri"), "mode must be one of"),
        (
            lambda: S.sgdr(max_lr=0.1, cycle_steps=10, cycle_mult=0.5),
            "cycle_mult must be a number >= 1",
        ),
        (lambda: S.sgdr(max_lr=0.1, cycle_steps=0), "cycle_steps"),
        (lambda: S.sgdr(max_lr=0.1, cycle_steps=10, cycle_decay=0), "cycle_decay"),
    ],
)
def test_bad_parameters_fail_at_construction_naming_the_parameter(
    build: Callable[[], S.Schedule], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()
