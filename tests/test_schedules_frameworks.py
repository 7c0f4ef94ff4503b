"""Other frameworks' schedules by their names: Hugging Face's against transformers itself,
timm's cosine against its documented formula (and against timm where timm imports), and
timm's ``lr_scale`` convention in ``find_lr``."""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import pytest
import torch
from tests.test_schedules import assert_round_trips

import lrkit
from lrkit import schedules as S

# ------------------------------------------------------------------------ Hugging Face

HF_CASES: list[tuple[str, int | None, int | None, dict[str, Any]]] = [
    ("linear", 100, 1000, {}),
    ("linear", 0, 1000, {}),
    ("cosine", 100, 1200, {}),
    ("cosine", 0, 1000, {"num_cycles": 1.0}),
    ("cosine", 50, 1050, {"num_cycles": 1.5}),
    ("cosine", 10, 1001, {"num_cycles": 0.75}),
    ("cosine_with_restarts", 100, 1100, {}),
    ("cosine_with_restarts", 1, 1000, {"num_cycles": 3}),
    ("cosine_with_restarts", 100, 1100, {"num_cycles": 4}),
    ("cosine_with_restarts", 10, 1010, {"num_cycles": 7}),
    ("polynomial", 100, 1000, {}),
    ("polynomial", 0, 1000, {"lr_end": 1e-4, "power": 2.0}),
    ("polynomial", 30, 1000, {"lr_end": 0.0, "power": 0.5}),
    ("constant", None, None, {}),
    ("constant_with_warmup", 100, None, {}),
    ("constant_with_warmup", 0, None, {}),
    ("inverse_sqrt", 100, None, {}),
    ("inverse_sqrt", 0, None, {}),
    ("inverse_sqrt", 50, None, {"timescale": 200}),
    ("cosine_with_min_lr", 100, 1000, {"min_lr_rate": 0.1}),
    ("cosine_with_min_lr", 0, 1000, {"min_lr": 1e-5}),
    ("cosine_with_min_lr", 20, 1020, {"min_lr_rate": 0.05, "num_cycles": 1.0}),
    ("cosine_warmup_with_min_lr", 100, 1000, {"min_lr_rate": 0.1}),
    ("cosine_warmup_with_min_lr", 100, 1000, {"min_lr": 1e-5, "warmup_lr_rate": 0.05}),
    ("cosine_warmup_with_min_lr", 0, 1000, {"min_lr_rate": 0.1}),
    ("cosine_warmup_with_min_lr", 1, 1000, {"min_lr_rate": 0.0}),
    ("warmup_stable_decay", 100, 1000, {"num_decay_steps": 200}),
    (
        "warmup_stable_decay",
        50,
        1000,
        {"num_decay_steps": 300, "decay_type": "linear", "min_lr_ratio": 0.1},
    ),
    (
        "warmup_stable_decay",
        100,
        None,
        {"num_decay_steps": 250, "num_stable_steps": 700, "warmup_type": "cosine"},
    ),
    (
        "warmup_stable_decay",
        80,
        1000,
        {"num_decay_steps": 400, "warmup_type": "1-sqrt", "decay_type": "1-sqrt"},
    ),
]
MAX_LR = 3e-4


def hf_lrs(name: str, warm: int | None, total: int | None, kwargs: dict[str, Any], n: int):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=MAX_LR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wsd warns when given both the total and stable steps
        sched = transformers.get_scheduler(
            name, opt, num_warmup_steps=warm, num_training_steps=total,
            scheduler_specific_kwargs=kwargs,
        )  # fmt: skip
    return drive(opt, sched, n)


def drive(opt: torch.optim.Optimizer, sched: Any, n: int) -> list[float]:
    """The LR of each of ``n`` training steps (read before the step, stepped after it)."""
    out = []
    for _ in range(n):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


def assert_equal_lrs(ours: list[float], theirs: list[float], max_lr: float) -> None:
    # 1e-12 relative; where both are ~0 (a cosine's trough) 1e-15 of the peak absolute
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15 * max_lr), f"step {t}"


@pytest.mark.parametrize(("name", "warm", "total", "kwargs"), HF_CASES)
def test_every_hf_schedule_equals_transformers_at_every_step(
    name: str, warm: int | None, total: int | None, kwargs: dict[str, Any]
) -> None:
    n = total if total is not None else 1500
    if name == "warmup_stable_decay" and total is None:
        n = warm + kwargs["num_stable_steps"] + kwargs["num_decay_steps"]  # type: ignore[operator]
    assert n >= 1000
    expected = hf_lrs(name, warm, total, kwargs, n)
    schedule = S.hf(name, MAX_LR, warm, total, **kwargs)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=MAX_LR)
    assert_equal_lrs(drive(opt, lrkit.to_torch(opt, schedule), n), expected, MAX_LR)
    assert_round_trips(schedule)  # a plain lrkit schedule: it prints, parses and plots


def test_every_hf_scheduler_type_is_covered() -> None:
    trainer_utils = pytest.importorskip("transformers.trainer_utils")
    names = {t.value for t in trainer_utils.SchedulerType}
    assert (
        names - {"greedy"}
        == set(S.HF_SCHEDULES)
        == {case[0] for case in HF_CASES} | {"reduce_lr_on_plateau"}
    )


def test_hf_reduce_lr_on_plateau_is_a_constant_with_lrkits_plateau() -> None:
    transformers = pytest.importorskip("transformers")
    options = {"factor": 0.5, "patience": 2, "threshold": 1e-3}
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=MAX_LR)
    ref = transformers.get_scheduler(
        "reduce_lr_on_plateau", ref_opt, scheduler_specific_kwargs=options
    )
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=MAX_LR)
    schedule = S.hf("reduce_lr_on_plateau", MAX_LR)
    sched = lrkit.to_torch(opt, schedule, plateau=lrkit.ReduceOnPlateau(**options))
    losses = [1 / (1 + math.floor(t / 7)) + 0.01 * (t % 3) for t in range(1000)]
    for loss in losses:
        ref_opt.step()
        ref.step(loss)
        opt.step()
        sched.step(loss)
        assert opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], 1e-12)
    assert opt.param_groups[0]["lr"] < MAX_LR / 100  # it did reduce, many times


def test_hf_warmups_start_at_zero() -> None:
    s = S.hf("linear", 1.0, num_warmup_steps=4, num_training_steps=10)
    assert [s(t) for t in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert S.warmup(S.constant(2.0), warmup_steps=4, start_factor=0.0)(2) == 1.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: S.hf("greedy", 1.0), "GreedyLR"),
        (lambda: S.hf("cosine_annealing", 1.0, 0, 10), "name must be one of"),
        (lambda: S.hf("linear", 1.0, 0, 10, num_cycles=2), "has no option 'num_cycles'"),
        (lambda: S.hf("reduce_lr_on_plateau", 1.0, patience=2), "ReduceOnPlateau"),
        (lambda: S.hf("linear", 1.0, 10, 10), "num_training_steps must be > num_warmup_steps"),
        (lambda: S.hf("cosine", 1.0, None, 10), "needs num_warmup_steps"),
        (lambda: S.hf("cosine_with_min_lr", 1.0, 0, 10), "exactly one of min_lr= and min_lr"),
        (lambda: S.hf("warmup_stable_decay", 1.0, 0, 10), "needs num_decay_steps"),
        (lambda: S.hf("polynomial", 1.0, 0, 10, lr_end=2.0), "lr_end must be < max_lr"),
    ],
)
def test_hf_presets_refuse_what_they_cannot_give_exactly(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_inverse_sqrt_timescale_is_expressible() -> None:
    s = S.inverse_sqrt(max_lr=1.0, warmup_steps=10, timescale=40)
    assert s(10) == 1.0
    assert s(10 + 3 * 40) == pytest.approx(0.5)  # sqrt((120 + 40) / 40) = 2
    assert S.parse(s.to_spec()) == s


def test_wsd_decays_and_warms_up_with_hfs_shapes() -> None:
    s = S.wsd(
        max_lr=1.0, total_steps=100, warmup_steps=10, decay_frac=0.2,
        decay_shape="cosine", warmup_shape="sqrt",
    )  # fmt: skip
    assert s(5) == pytest.approx(1 - math.sqrt(0.5))
    assert s(90) == pytest.approx(0.5) and s(85) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


# ------------------------------------------------------------------------------- timm


def timm_formula(t: int, base: float, **o: Any) -> float:
    """CosineLRScheduler's value at ``t``, as timm documents it (exact cycle index)."""
    warm, init = o.get("warmup_t", 0), o.get("warmup_lr_init", 0.0)
    if t < warm:
        return init + t * (base - init) / warm
    if o.get("warmup_prefix", False):
        t -= warm
    t0, m = o["t_initial"], o.get("cycle_mul", 1.0)
    lr_min, k = o.get("lr_min", 0.0), o.get("k_decay", 1.0)
    i = 0
    start = 0.0
    while start + t0 * m**i <= t:  # the cycle t falls in, counted exactly
        start += t0 * m**i
        i += 1
    if i >= o.get("cycle_limit", 1):
        return lr_min
    length, t_cur = t0 * m**i, t - start
    peak = base * o.get("cycle_decay", 1.0) ** i
    return lr_min + 0.5 * (peak - lr_min) * (1 + math.cos(math.pi * t_cur**k / length**k))


TIMM_KEYS = (
    "t_initial", "lr_min", "cycle_mul", "cycle_decay", "cycle_limit", "warmup_t",
    "warmup_lr_init", "warmup_prefix", "k_decay",
)  # fmt: skip
TIMM_VALUES = (
    [10, 37], [0.0, 1e-5], [1.0, 1.5, 2.0], [1.0, 0.5], [1, 3], [0, 5], [0.0, 1e-5],
    [False, True], [1.0, 0.5, 2.0],
)  # fmt: skip
TIMM_GRID = [dict(zip(TIMM_KEYS, v, strict=True)) for v in itertools.product(*TIMM_VALUES)]


def test_timm_cosine_follows_timms_formula_over_its_options_grid() -> None:
    base = 1e-3
    for options in TIMM_GRID:
        s = S.timm_cosine(base, **options)
        for t in range(120):
            assert s(t) == pytest.approx(timm_formula(t, base, **options), rel=1e-12, abs=1e-18)


def test_timm_cosine_hand_computed_values() -> None:
    # timm defaults: no warmup prefix (the warmup overlaps the cosine), warmup from 0,
    # one cycle, then lr_min.
    s = S.timm_cosine(1.0, t_initial=10, lr_min=0.1, warmup_t=2)
    assert [round(s(t), 12) for t in (0, 1, 2, 5, 10, 50)] == [
        0.0, 0.5, round(0.1 + 0.45 * (1 + math.cos(math.pi * 0.2)), 12), 0.55, 0.1, 0.1,
    ]  # fmt: skip
    # cycle_decay shrinks the peak itself (not the span above lr_min); k_decay bends it
    s = S.timm_cosine(1.0, t_initial=10, lr_min=0.1, cycle_decay=0.5, cycle_limit=2, k_decay=2)
    assert s(10) == 0.5  # cycle 1 peaks at 1.0 * 0.5
    assert s(15) == pytest.approx(0.1 + 0.2 * (1 + math.cos(math.pi * 0.25)))
    assert s(20) == 0.1
    # with the prefix the cosine starts after the warmup
    s = S.timm_cosine(1.0, t_initial=10, warmup_t=5, warmup_lr_init=0.5, warmup_prefix=True)
    assert [s(t) for t in (0, 5, 10, 15)] == [0.5, 1.0, pytest.approx(0.5), 0.0]
    assert_round_trips(s)


def _timm_scheduler() -> Any:
    pytest.importorskip(
        "timm",
        reason="timm is not installed (it needs torchvision, whose wheel does not import beside "
        "every torch build); test_timm_cosine_follows_timms_formula_* covers the formula",
        exc_type=ImportError,
    )
    try:
        from timm.scheduler import CosineLRScheduler
    except Exception as exc:  # torchvision's CPU wheel does not import beside every torch
        pytest.skip(f"timm does not import here ({type(exc).__name__}: {exc})")
    return CosineLRScheduler


def _timm_lands_a_cycle_early(t: int, options: dict[str, Any]) -> bool:
    """timm takes the cycle index from a floating-point log, which can land one cycle early
    exactly at a restart (t_initial=10, cycle_mul=3: step 1210); lrkit counts exactly."""
    m, t0 = options["cycle_mul"], options["t_initial"]
    if m == 1:
        return False
    t_local = t - options["warmup_t"] if options["warmup_prefix"] else t
    i = math.floor(math.log(1 - t_local / t0 * (1 - m), m))
    return t0 * (m ** (i + 1) - 1) / (m - 1) <= t_local


@pytest.mark.parametrize("t_in_epochs", [True, False])
def test_timm_cosine_equals_timms_cosine_lr_scheduler(t_in_epochs: bool) -> None:
    scheduler = _timm_scheduler()
    scales = [0.75**2, 0.75, 1.0]  # timm's layer decay lives in each group's lr_scale
    for options in TIMM_GRID[::3]:  # a third of the grid: timm's stepping is slow
        groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr_scale": s} for s in scales]
        ref_opt = torch.optim.SGD(groups, lr=1e-3)
        ref = scheduler(ref_opt, t_in_epochs=t_in_epochs, **options)
        groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr_scale": s} for s in scales]
        opt = torch.optim.SGD(groups, lr=1e-3)
        sched = lrkit.to_torch(opt, S.timm_cosine(1e-3, **options))
        for t in range(120):
            if t:
                if t_in_epochs:
                    ref.step(t)  # timm's scheduler.step(epoch)
                else:
                    ref.step_update(t)
                opt.step()
                sched.step()
            if _timm_lands_a_cycle_early(t, options):
                continue
            ours = [g["lr"] for g in opt.param_groups]
            theirs = [g["lr"] for g in ref_opt.param_groups]
            assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-18), (options, t)


def test_find_lr_honours_each_groups_lr_scale() -> None:
    # timm's param_groups_layer_decay gives every group the same lr and an lr_scale; the
    # range test used to run them all at one LR.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    scales = [0.5, 1.0]
    groups = [
        {"params": list(layer.parameters()), "lr_scale": s}
        for layer, s in zip((model[0], model[2]), scales, strict=True)
    ]
    opt = torch.optim.SGD(groups, lr=0.1)
    seen: list[list[float]] = []

    def step(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        seen.append([float(g["lr"]) for g in opt.param_groups])
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y)

    data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(4)]
    res = lrkit.find_lr(model, opt, data, step_fn=step, num_steps=10, progress=False)
    assert all(low == pytest.approx(high * 0.5) for low, high in seen)
    assert res.group_ratios == [0.5, 1.0]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]  # restored
