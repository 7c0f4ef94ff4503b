"""Schedules as a whole: steps and numbers they accept, one vocabulary (old names deprecated),
specs that round-trip (momentum schedules too), bounds, and parse errors that stay short.

The shapes, cycles and combinators have their own files (test_schedules_*.py)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit import schedules as S

# ----------------------------------------------------------------------------- steps and numbers


@pytest.mark.parametrize(
    "step",
    [7, np.int64(7), np.int32(7), np.uint8(7), torch.tensor(7), torch.tensor(7, dtype=torch.int32)],
    ids=["int", "np.int64", "np.int32", "np.uint8", "tensor-int64", "tensor-int32"],
)
def test_steps_of_any_integer_type_are_accepted(step: Any) -> None:
    s = S.one_cycle(max_lr=0.1, total_steps=100)
    assert s(step) == s(7)
    assert S.cosine(max_lr=0.1, total_steps=step)(3) == S.cosine(max_lr=0.1, total_steps=7)(3)


@pytest.mark.parametrize(
    "step",
    [
        True,
        np.bool_(True),
        torch.tensor(True),
        2.0,
        2.5,
        np.float64(2.0),
        torch.tensor(2.0),
        torch.tensor([2]),
        np.array([2]),
        "2",
        None,
        -1,
    ],
)
def test_bools_and_non_integral_steps_are_refused_naming_the_argument(step: Any) -> None:
    with pytest.raises(ValueError, match=r"step must be an integer >= 0 \(got "):
        S.constant(0.1)(step)
    with pytest.raises(ValueError, match=r"total_steps must be an integer >= 1 \(got "):
        S.cosine(max_lr=0.1, total_steps=step)


def test_numpy_steps_and_levels_become_plain_numbers_so_the_spec_parses() -> None:
    s = S.cosine(max_lr=np.float64(0.1), total_steps=np.int64(100), min_lr=np.float32(0.0))
    assert s.to_spec() == "cosine(max_lr=0.1, total_steps=100)"
    assert type(s.max_lr) is float and type(s.total_steps) is int
    assert S.parse(s.to_spec()) == s
    join = S.join([S.constant(1.0), S.constant(0.5)], boundaries=np.array([5]).tolist())
    assert S.multistep(0.1, 0.5, milestones=list(np.array([3, 9]))).milestones == (3, 9)
    assert join.boundaries == (5,)


@pytest.mark.parametrize(
    "build",
    [
        lambda: S.cosine(max_lr=True, total_steps=10),
        lambda: S.constant(True),
        lambda: S.one_cycle(max_lr=0.1, total_steps=100, div_factor=True),
        lambda: S.warmup(S.constant(1.0), warmup_steps=5, start_factor=True),
        lambda: S.piecewise_constant([5], [1.0, False]),
        lambda: S.cyclic(min_lr=False, max_lr=0.1),
        lambda: S.constant(np.bool_(True)),
        lambda: S.constant("0.1"),
    ],
)
def test_booleans_and_strings_are_not_numbers(build: Any) -> None:
    with pytest.raises(ValueError, match=r"must be a (finite )?number|in \(0, 1\]|in \[0, 1\]"):
        build()


# ----------------------------------------------------------------------------- one vocabulary

RENAMED = [
    ("linear", {"start": 1.0, "end": 0.0, "steps": 4},
     {"start_lr": 1.0, "end_lr": 0.0, "total_steps": 4}),
    ("exponential", {"lr": 1.0, "gamma": 0.5, "every": 3},
     {"start_lr": 1.0, "gamma": 0.5, "interval_steps": 3}),
    ("step", {"lr": 1.0, "gamma": 0.5, "step_size": 3},
     {"start_lr": 1.0, "gamma": 0.5, "interval_steps": 3}),
    ("multistep", {"lr": 1.0, "gamma": 0.5, "milestones": [3]},
     {"start_lr": 1.0, "gamma": 0.5, "milestones": [3]}),
    ("polynomial", {"lr": 1.0, "end_lr": 0.1, "steps": 9},
     {"max_lr": 1.0, "min_lr": 0.1, "total_steps": 9}),
    ("cosine", {"lr": 1.0, "steps": 9}, {"max_lr": 1.0, "total_steps": 9}),
    ("inverse_sqrt", {"lr": 1.0, "warmup_steps": 9}, {"max_lr": 1.0, "warmup_steps": 9}),
    ("one_cycle", {"max_lr": 1.0, "total_steps": 100, "base_momentum": 0.8},
     {"max_lr": 1.0, "total_steps": 100, "min_momentum": 0.8}),
    ("cyclic",
     {"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 5, "step_size_down": 6, "base_momentum": 0.7},
     {"min_lr": 0.1, "max_lr": 1.0, "up_steps": 5, "down_steps": 6, "min_momentum": 0.7}),
    ("sgdr", {"max_lr": 1.0, "t_0": 5, "t_mult": 2, "decay": 0.5},
     {"max_lr": 1.0, "cycle_steps": 5, "cycle_mult": 2, "cycle_decay": 0.5}),
    ("warmup", {"schedule": S.constant(1.0), "steps": 5},
     {"schedule": S.constant(1.0), "warmup_steps": 5}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "old", "new"), RENAMED, ids=[r[0] for r in RENAMED])
def test_old_names_still_work_for_a_release_with_a_warning_naming_the_new_one(
    name: str, old: dict[str, Any], new: dict[str, Any]
) -> None:
    cls = getattr(S, name)
    expected = cls(**new)
    renamed = {k: v for k, v in cls.old_names.items() if k in old}
    with pytest.warns(DeprecationWarning, match="is deprecated: use") as caught:
        assert cls(**old) == expected
    messages = " ".join(str(w.message) for w in caught)
    for old_name, new_name in renamed.items():
        assert f"{name}({old_name}=...) is deprecated: use {new_name}=" in messages
    assert caught[0].filename == __file__  # points at the caller's line
    # Specs and dicts saved by lrkit 0.1 (sweep stores, checkpoints) still load.
    spec = f"{name}({', '.join(f'{k}={v!r}' for k, v in old.items())})"
    with pytest.warns(DeprecationWarning, match="is deprecated: use"):
        assert S.parse(spec) == expected
    with pytest.warns(DeprecationWarning, match="is deprecated: use"):
        assert S.parse({"name": name, **{k: S.parse(v.to_dict()) if isinstance(v, S.Schedule)
                                        else v for k, v in old.items()}}) == expected  # fmt: skip


def test_an_old_and_a_new_name_together_are_refused() -> None:
    with pytest.raises(ValueError, match="got both lr= and max_lr="):
        S.cosine(lr=0.1, max_lr=0.1, total_steps=10)  # type: ignore[call-arg]


def test_internal_presets_use_only_the_new_names() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in S.PRESETS:
            sched = S.for_run(name, 0.1, 200)
            assert sched.bounds()[1] == pytest.approx(0.1)
            assert S.parse(sched.to_spec()) == sched


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
        st.builds(S.inverse_sqrt, lr_, st.integers(0, 300), st.integers(1, 3000)),
        st.builds(
            S.anneal,
            lr_,
            lr_,
            st.floats(1, 500),
            st.floats(-1, 0.5),
            st.sampled_from(["cosine", "linear"]),
        ),
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
            st.sampled_from(["span", "peak"]),
            st.floats(0.5, 3.0),
            st.one_of(st.none(), st.integers(1, 5)),
        ),
        st.builds(
            S.wsd,
            lr_,
            st.integers(50, 3000),
            st.integers(0, 20),
            st.floats(0.1, 0.5),
            st.sampled_from(["linear", "cosine", "sqrt"]),
            st.floats(0, 1e-6),
            st.sampled_from(["linear", "cosine", "sqrt"]),
        ),
    ]
    base = draw(st.one_of(leaves))
    if depth < 2 and draw(st.booleans()):
        kind = draw(st.sampled_from(["warmup", "join", "scale", "shift"]))
        if kind == "warmup":
            shape = draw(st.sampled_from(["linear", "exponential", "cosine"]))
            low = 0.01 if shape == "exponential" else 0.0  # HF's warmups start at 0
            return S.warmup(base, draw(st.integers(1, 300)), draw(st.floats(low, 1.0)), shape)
        if kind == "shift":
            return S.shift(base, draw(st.integers(0, 500)))
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


def assert_round_trips(sched: S.Schedule) -> None:
    from_spec = S.parse(sched.to_spec())
    from_dict = S.parse(sched.to_dict())
    assert from_spec == sched and from_dict == sched
    for t in (0, 1, 7, 99, 1000, 4321):
        assert from_spec(t) == sched(t) == from_dict(t)


@settings(max_examples=100, deadline=None)
@given(sched=any_schedule())
def test_spec_and_dict_round_trip_exactly(sched: S.Schedule) -> None:
    assert_round_trips(sched)


@settings(max_examples=100, deadline=None)
@given(sched=any_schedule())
def test_momentum_schedules_round_trip_exactly_too(sched: S.Schedule) -> None:
    # 0.1's one-cycle and cyclic momentum printed as "(knots=...)", which parse refused.
    momentum = sched.momentum_schedule()
    if momentum is not None:
        assert_round_trips(momentum)


def test_every_schedule_name_is_covered_by_the_property_tests() -> None:
    assert set(S.names()) == {
        "anneal", "constant", "cosine", "cyclic", "exponential", "inverse_sqrt", "join",
        "linear", "multistep", "one_cycle", "piecewise_constant", "polynomial", "scale", "sgdr",
        "shift", "step", "warmup", "wsd",
    }  # fmt: skip


# ----------------------------------------------------------------------------- specs


def test_spec_parses_nested_and_positional_arguments() -> None:
    s = S.parse("warmup(one_cycle(3e-3, 1000), warmup_steps=100)")
    assert s == S.warmup(S.one_cycle(max_lr=3e-3, total_steps=1000), warmup_steps=100)
    assert S.parse({"name": "cosine", "max_lr": 0.1, "total_steps": 10}) == S.cosine(0.1, 10)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cosin(max_lr=0.1, total_steps=10)", r"unknown schedule 'cosin'; valid: .*cosine"),
        (
            "cosine(max_lr=0.1, step=10)",
            r"no parameter 'step'; valid: max_lr, total_steps, min_lr",
        ),
        ("cosine(max_lr=0.1)", "missing total_steps"),
        ("__import__('os').system('true')", "plain name"),
        ("__import__('os')", "unknown schedule '__import__'"),
        ("cosine(max_lr=0.1, total_steps=10) + 1", "only schedule calls"),
        ("0.1", "expected a schedule call"),
        ("cosine(max_lr=x, total_steps=10)", "only schedule calls, numbers"),
        ("cosine(max_lr=0.1, total_steps=", "bad schedule spec"),
        ("os.cosine(max_lr=0.1, total_steps=10)", "plain name"),
    ],
)
def test_bad_specs_are_refused_without_evaluation(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        S.parse(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "cosine(max_lr=0.1, total_steps=" + "9" * 100_000,  # a syntax error
        "cosine(max_lr=x" + "x" * 100_000 + ", total_steps=10)",  # a name where a number goes
        "cosin" + "e" * 100_000 + "(max_lr=0.1)",  # an unknown schedule
        "cosine(max_lr=0.1, total_steps=10, " + "m" * 100_000 + "=1)",  # an unknown parameter
        "multistep(0.1, 0.5, [" + "3, " * 30_000 + "])",  # a bad value
        "(" * 100_000 + ")" * 100_000,  # nested too deeply for the parser
    ],
    ids=["syntax", "name", "schedule", "parameter", "value", "nesting"],
)
def test_parse_errors_quote_a_bounded_excerpt_of_the_input(spec: str) -> None:
    with pytest.raises(ValueError, match=r"schedule|must be|parameter") as info:
        S.parse(spec)
    assert len(str(info.value)) < 600


def test_bare_names_say_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"unknown schedule 'cosin'"):
        S.parse("cosin")
    with pytest.raises(
        ValueError, match=r"cosine needs its parameters: cosine\(max_lr, total_steps, min_lr\)"
    ):
        S.parse("cosine")


def test_plot_schedule_overlays_and_puts_momentum_on_a_twin_axis() -> None:
    import lrkit

    both = [S.one_cycle(max_lr=0.1, total_steps=50), "cosine(max_lr=0.05, total_steps=50)"]
    fig = lrkit.plot_schedule(both, steps=50)
    lr_ax, momentum_ax = fig.axes
    assert [len(line.get_ydata()) for line in lr_ax.lines] == [50, 50]
    assert max(lr_ax.lines[0].get_ydata()) == pytest.approx(0.1)
    assert len(momentum_ax.lines) == 1  # only one-cycle has a momentum schedule
    assert max(momentum_ax.lines[0].get_ydata()) == pytest.approx(0.95)
    assert len(lrkit.plot_schedule(S.cosine(max_lr=0.1, total_steps=10), steps=10).axes) == 1
