"""Schedules: exact against PyTorch's schedulers and hand-computed Keras formulas, bounded,
round-tripping through their specs, and refusing bad parameters at construction."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
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
        (S.step(lr=0.1, gamma=0.5, step_size=30), lambda o: T.StepLR(o, 30, gamma=0.5)),
        (
            S.multistep(lr=0.1, gamma=0.3, milestones=[100, 300, 700]),
            lambda o: T.MultiStepLR(o, [100, 300, 700], gamma=0.3),
        ),
        (S.exponential(lr=0.1, gamma=0.995), lambda o: T.ExponentialLR(o, gamma=0.995)),
        (
            S.polynomial(lr=0.1, end_lr=0.0, steps=800, power=2.0),
            lambda o: T.PolynomialLR(o, total_iters=800, power=2.0),
        ),
        (
            S.polynomial(lr=0.1, end_lr=0.0, steps=N, power=1.0),
            lambda o: T.PolynomialLR(o, total_iters=N, power=1.0),
        ),
        (S.sgdr(max_lr=0.1, t_0=50), lambda o: T.CosineAnnealingWarmRestarts(o, T_0=50)),
        (
            S.sgdr(max_lr=0.1, t_0=10, t_mult=2, min_lr=1e-4),
            lambda o: T.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-4),
        ),
        (
            S.warmup(S.constant(0.1), steps=100, start_factor=0.1),
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
    sched = S.cosine(lr=base, steps=steps, min_lr=min_lr)
    closed = [min_lr + (base - min_lr) * (1 + math.cos(math.pi * t / steps)) / 2 for t in range(N)]
    assert_close(values(sched), closed, rel=1e-12)
    # PyTorch's recursive CosineAnnealingLR tracks it only up to its own drift.
    lrs, _ = torch_values(lambda o: T.CosineAnnealingLR(o, T_max=steps, eta_min=min_lr))
    assert_close(values(sched), lrs, rel=1e-6)
    assert sched(steps) == min_lr and sched(steps + 500) == min_lr


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize("down", [None, 50])
def test_cyclic_matches_cycliclr_with_momentum(mode: str, down: int | None) -> None:
    ours = S.cyclic(
        base_lr=0.001,
        max_lr=0.1,
        step_size_up=100,
        step_size_down=down,
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


# ----------------------------------------------------------------------------- vs Keras


def test_piecewise_constant_follows_keras_boundaries() -> None:
    s = S.piecewise_constant(boundaries=[100, 110], values=[1.0, 0.5, 0.1])
    expected = [1.0 if t <= 100 else 0.5 if t <= 110 else 0.1 for t in range(200)]
    assert values(s, 200) == expected


def test_polynomial_with_cycle_follows_keras() -> None:
    s = S.polynomial(lr=0.1, end_lr=0.01, steps=100, power=0.5, cycle=True)
    assert s(0) == pytest.approx(0.1)
    assert s(100) == pytest.approx(0.01)
    assert s(150) == pytest.approx(0.09 * 0.25**0.5 + 0.01)  # horizon 200
    assert s(101) == pytest.approx(0.09 * (1 - 101 / 200) ** 0.5 + 0.01)
    assert s(250) == pytest.approx(0.09 * (1 - 250 / 300) ** 0.5 + 0.01)
    flat = S.polynomial(lr=0.1, end_lr=0.01, steps=100, power=0.5)
    assert flat(250) == pytest.approx(0.01)


def test_sgdr_decay_is_keras_cosine_decay_restarts_m_mul() -> None:
    # Keras CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5, alpha=0):
    # cycle i lasts 10 * 2**i steps and peaks at 0.5**i.
    s = S.sgdr(max_lr=1.0, t_0=10, t_mult=2.0, decay=0.5)

    def keras(t: int) -> float:
        start, length, peak = 0, 10, 1.0
        while t >= start + length:
            start, length, peak = start + length, length * 2, peak * 0.5
        return peak * 0.5 * (1 + math.cos(math.pi * (t - start) / length))

    assert [s(t) for t in (0, 5, 10, 20, 30, 70)] == pytest.approx(
        [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    )
    assert_close(values(s, 500), [keras(t) for t in range(500)], rel=1e-12)


def test_sgdr_with_fractional_t_mult_restarts_at_the_right_steps() -> None:
    s = S.sgdr(max_lr=1.0, t_0=10, t_mult=1.5)
    starts = [0.0]
    length = 10.0
    while starts[-1] < 300:
        starts.append(starts[-1] + length)
        length *= 1.5
    for t in range(300):
        i = max(k for k, st_ in enumerate(starts) if st_ <= t)
        assert s.cycle_at(t)[0] == i


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
    s = S.inverse_sqrt(lr=1.0, warmup_steps=100)
    assert s(0) == 0.0 and s(50) == 0.5 and s(100) == 1.0
    assert s(400) == pytest.approx(0.5)


def test_linear_exponential_staircase_and_scale() -> None:
    assert values(S.linear(1.0, 0.0, steps=4), 6) == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    e = S.exponential(lr=1.0, gamma=0.5, every=10, staircase=True)
    assert [e(t) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    smooth = S.exponential(lr=1.0, gamma=0.5, every=10)
    assert smooth(5) == pytest.approx(0.5**0.5)
    assert S.scale(S.constant(0.2), 3)(7) == pytest.approx(0.6)


@pytest.mark.parametrize("shape", ["linear", "exponential", "cosine"])
def test_warmup_shapes_start_at_the_factor_and_hand_over(shape: str) -> None:
    inner = S.cosine(lr=1.0, steps=50)
    s = S.warmup(inner, steps=20, start_factor=0.01, shape=shape)
    assert s(0) == pytest.approx(0.01)
    mids = [s(t) for t in range(20)]
    assert all(b > a for a, b in itertools.pairwise(mids))
    assert [s(20 + t) for t in range(60)] == [inner(t) for t in range(60)]
    if shape == "exponential":
        assert s(10) == pytest.approx(0.1)  # geometric middle of 0.01 and 1


def test_join_gives_each_piece_its_local_step() -> None:
    s = S.join([S.linear(0.0, 1.0, steps=10), S.cosine(1.0, steps=90)], boundaries=[10])
    assert s(5) == pytest.approx(0.5)
    assert s(10) == 1.0
    assert s(55) == pytest.approx(S.cosine(1.0, steps=90)(45))


def test_warmup_joins_the_inner_momentum_schedule() -> None:
    inner = S.one_cycle(max_lr=1.0, total_steps=100)
    m = S.warmup(inner, steps=10).momentum_schedule()
    assert m is not None
    assert m(0) == inner.momentum_schedule()(0)
    assert m(10 + 37) == inner.momentum_schedule()(37)


def test_step_must_be_a_non_negative_integer() -> None:
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        S.constant(0.1)(-1)


# ----------------------------------------------------------------------------- properties

lr_ = st.floats(1e-6, 10.0)
steps_ = st.integers(1, 2000)
frac = st.floats(0.05, 0.45)


@st.composite
def any_schedule(draw: st.DrawFn, depth: int = 0) -> S.Schedule:
    leaves = [
        st.builds(S.constant, lr_),
        st.builds(S.linear, lr_, lr_, steps_),
        st.builds(S.exponential, lr_, st.floats(0.9, 1.0), st.integers(1, 50), st.booleans()),
        st.builds(S.step, lr_, st.floats(0.1, 1.0), st.integers(1, 200)),
        st.builds(
            S.multistep,
            lr_,
            st.floats(0.1, 1.0),
            st.lists(st.integers(1, 3000), min_size=1, max_size=5, unique=True).map(sorted),
        ),
        st.builds(S.polynomial, lr_, st.floats(0, 1e-6), steps_, st.floats(0.5, 3), st.booleans()),
        st.builds(S.cosine, lr_, steps_, st.floats(0, 1e-6)),
        st.builds(S.inverse_sqrt, lr_, steps_),
        st.builds(
            S.one_cycle,
            lr_,
            st.integers(100, 3000),
            frac,
            st.sampled_from(["cos", "linear"]),
            st.floats(2, 100),
            st.floats(1, 1e5),
            st.booleans(),
        ),
        st.builds(
            S.cyclic,
            st.floats(0, 1e-3),
            lr_.map(lambda x: x + 1e-3),
            st.integers(1, 500),
            st.one_of(st.none(), st.integers(1, 500)),
            st.sampled_from(["triangular", "triangular2", "exp_range"]),
            st.floats(0.9, 1.0),
        ),
        st.builds(
            S.sgdr,
            lr_,
            st.integers(1, 200),
            st.sampled_from([1, 2, 1.5]),
            st.floats(0, 1e-6),
            st.floats(0.3, 1.0),
        ),
        st.builds(
            S.wsd,
            lr_,
            st.integers(50, 3000),
            st.integers(0, 20),
            st.floats(0.1, 0.5),
            st.sampled_from(["linear", "cosine", "sqrt"]),
            st.floats(0, 1e-6),
        ),
    ]
    base = draw(st.one_of(leaves))
    if depth < 2 and draw(st.booleans()):
        kind = draw(st.sampled_from(["warmup", "join", "scale"]))
        if kind == "warmup":
            return S.warmup(
                base,
                draw(st.integers(1, 300)),
                draw(st.floats(0.01, 1.0)),
                draw(st.sampled_from(["linear", "exponential", "cosine"])),
            )
        if kind == "scale":
            return S.scale(base, draw(st.floats(0.0, 4.0)))
        other = draw(any_schedule(depth + 1))
        return S.join([base, other], [draw(st.integers(1, 2000))])
    return base


@settings(max_examples=150, deadline=None)
@given(sched=any_schedule(), t=st.integers(0, 6000))
def test_every_schedule_stays_within_its_bounds(sched: S.Schedule, t: int) -> None:
    lo, hi = sched.bounds()
    value = sched(t)
    assert math.isfinite(value)
    assert lo * (1 - 1e-12) - 1e-15 <= value <= hi * (1 + 1e-12) + 1e-15


@settings(max_examples=100, deadline=None)
@given(sched=any_schedule())
def test_spec_and_dict_round_trip_exactly(sched: S.Schedule) -> None:
    from_spec = S.parse(sched.to_spec())
    from_dict = S.parse(sched.to_dict())
    assert from_spec == sched and from_dict == sched
    for t in (0, 1, 7, 99, 1000, 4321):
        assert from_spec(t) == sched(t) == from_dict(t)


def test_spec_parses_nested_and_positional_arguments() -> None:
    s = S.parse("warmup(one_cycle(3e-3, 1000), steps=100)")
    assert s == S.warmup(S.one_cycle(max_lr=3e-3, total_steps=1000), steps=100)
    assert S.parse({"name": "cosine", "lr": 0.1, "steps": 10}) == S.cosine(0.1, 10)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cosin(lr=0.1, steps=10)", r"unknown schedule 'cosin'; valid: .*cosine"),
        ("cosine(lr=0.1, step=10)", r"no parameter 'step'; valid: lr, steps, min_lr"),
        ("cosine(lr=0.1)", "missing steps"),
        ("__import__('os').system('true')", "plain name"),
        ("__import__('os')", "unknown schedule '__import__'"),
        ("cosine(lr=0.1, steps=10) + 1", "only schedule calls"),
        ("0.1", "expected a schedule call"),
        ("cosine(lr=x, steps=10)", "only schedule calls, numbers"),
        ("cosine(lr=0.1, steps=", "bad schedule spec"),
        ("os.cosine(lr=0.1, steps=10)", "plain name"),
    ],
)
def test_bad_specs_are_refused_without_evaluation(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        S.parse(spec)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: S.cosine(lr=0.1, steps=0), "steps must be an integer >= 1"),
        (lambda: S.linear(1.0, 0.0, steps=-5), "steps must be an integer >= 1"),
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
        (lambda: S.cyclic(base_lr=0.1, max_lr=0.01), r"max_lr must be >= base_lr \(0.1\)"),
        (lambda: S.cyclic(base_lr=0.001, max_lr=0.01, mode="tri"), "mode must be one of"),
        (lambda: S.sgdr(max_lr=0.1, t_0=10, t_mult=0.5), "t_mult must be a number >= 1"),
        (lambda: S.sgdr(max_lr=0.1, t_0=0), "t_0"),
        (
            lambda: S.piecewise_constant([10, 5], [1.0, 0.5, 0.1]),
            "boundaries must be strictly increasing",
        ),
        (
            lambda: S.piecewise_constant([10, 20], [1.0, 0.5]),
            r"values must be one longer than boundaries",
        ),
        (lambda: S.multistep(0.1, 0.5, [30, 10]), "milestones must be strictly increasing"),
        (
            lambda: S.join([S.constant(1.0), S.constant(0.5)], [5, 6]),
            "boundaries must be one shorter",
        ),
        (
            lambda: S.join([S.constant(1.0), S.constant(0.5), S.constant(0.1)], [6, 5]),
            "strictly increasing",
        ),
        (lambda: S.warmup(S.constant(1.0), steps=0), "steps"),
        (lambda: S.warmup(S.constant(1.0), steps=10, start_factor=0.0), "start_factor"),
        (lambda: S.warmup(S.constant(1.0), steps=10, shape="quadratic"), "shape must be one of"),
        (lambda: S.wsd(max_lr=1.0, total_steps=100, warmup_steps=90), "warmup_steps must be <="),
        (lambda: S.wsd(max_lr=1.0, total_steps=100, decay_shape="exp"), "decay_shape"),
        (lambda: S.exponential(lr=0.1, gamma=0.0), "gamma must be a finite number > 0"),
        (lambda: S.cosine(lr=0.1, steps=10, min_lr=1.0), r"min_lr must be <= lr"),
        (lambda: S.polynomial(lr=0.1, end_lr=0.0, steps=10, power=0), "power"),
    ],
)
def test_bad_parameters_fail_at_construction_naming_the_parameter(
    build: Callable[[], S.Schedule], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_bare_names_say_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"unknown schedule 'cosin'"):
        S.parse("cosin")
    with pytest.raises(
        ValueError, match=r"cosine needs its parameters: cosine\(lr, steps, min_lr\)"
    ):
        S.parse("cosine")


def test_plot_schedule_overlays_and_puts_momentum_on_a_twin_axis() -> None:
    import lrkit

    both = [S.one_cycle(max_lr=0.1, total_steps=50), "cosine(lr=0.05, steps=50)"]
    fig = lrkit.plot_schedule(both, steps=50)
    lr_ax, momentum_ax = fig.axes
    assert [len(line.get_ydata()) for line in lr_ax.lines] == [50, 50]
    assert max(lr_ax.lines[0].get_ydata()) == pytest.approx(0.1)
    assert len(momentum_ax.lines) == 1  # only one-cycle has a momentum schedule
    assert max(momentum_ax.lines[0].get_ydata()) == pytest.approx(0.95)
    assert len(lrkit.plot_schedule(S.cosine(lr=0.1, steps=10), steps=10).axes) == 1
