"""Combinators: warmup hands over to its schedule, join gives local steps, scale multiplies."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from lrkit import schedules as S


@pytest.mark.parametrize("shape", ["linear", "exponential", "cosine"])
def test_warmup_shapes_start_at_the_factor_and_hand_over(shape: str) -> None:
    inner = S.cosine(max_lr=1.0, total_steps=50)
    s = S.warmup(inner, warmup_steps=20, start_factor=0.01, shape=shape)
    assert s(0) == pytest.approx(0.01)
    mids = [s(t) for t in range(20)]
    assert all(b > a for a, b in itertools.pairwise(mids))
    assert [s(20 + t) for t in range(60)] == [inner(t) for t in range(60)]
    if shape == "exponential":
        assert s(10) == pytest.approx(0.1)  # geometric middle of 0.01 and 1


def test_join_gives_each_piece_its_local_step() -> None:
    s = S.join([S.linear(0.0, 1.0, total_steps=10), S.cosine(1.0, total_steps=90)], boundaries=[10])
    assert s(5) == pytest.approx(0.5)
    assert s(10) == 1.0
    assert s(55) == pytest.approx(S.cosine(1.0, total_steps=90)(45))


def test_warmup_joins_the_inner_momentum_schedule() -> None:
    inner = S.one_cycle(max_lr=1.0, total_steps=100)
    m = S.warmup(inner, warmup_steps=10).momentum_schedule()
    assert m is not None
    assert m(0) == inner.momentum_schedule()(0)
    assert m(10 + 37) == inner.momentum_schedule()(37)
    assert S.parse(m.to_spec()) == m


def test_scale_keeps_the_momentum_and_join_needs_it_from_every_piece() -> None:
    cycle = S.one_cycle(max_lr=1.0, total_steps=100)
    assert S.scale(cycle, 0.5).momentum_schedule() == cycle.momentum_schedule()
    assert S.join([cycle, S.constant(0.1)], [100]).momentum_schedule() is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: S.join([S.constant(1.0), S.constant(0.5)], [5, 6]),
            "boundaries must be one shorter",
        ),
        (
            lambda: S.join([S.constant(1.0), S.constant(0.5), S.constant(0.1)], [6, 5]),
            "strictly increasing",
        ),
        (lambda: S.join([], []), "schedules must be a non-empty list"),
        (lambda: S.warmup(S.constant(1.0), warmup_steps=0), "warmup_steps"),
        (
            lambda: S.warmup(S.constant(1.0), 10, start_factor=0.0, shape="exponential"),
            "start_factor must be > 0 with shape='exponential'",
        ),
        (lambda: S.warmup(S.constant(1.0), warmup_steps=10, start_factor=-0.1), "start_factor"),
        (
            lambda: S.warmup(S.constant(1.0), warmup_steps=10, shape="quadratic"),
            "shape must be one of",
        ),
        (lambda: S.scale(S.constant(1.0), factor=-1.0), "factor must be a finite number >= 0"),
        (lambda: S.scale(0.1, factor=2.0), "schedule must be a Schedule"),  # type: ignore[arg-type]
    ],
)
def test_bad_parameters_fail_at_construction_naming_the_parameter(
    build: Callable[[], S.Schedule], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()
