"""The range test: LR sequence, stopping, accumulation, step_fn, groups, runs, bad input."""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.conftest import make_data, make_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit import suggest
from lrkit.finder import Curve, FinderConfig, FinderResult, lr_schedule


def recording_step(seen: list[float], optimizer: torch.optim.Optimizer) -> Any:
    criterion = nn.CrossEntropyLoss()

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        seen.append(optimizer.param_groups[0]["lr"])
        x, y = batch
        return criterion(model(x), y)

    return step


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_lr_sequence_is_exact_and_ends_at_end_lr(mode: str, loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[float] = []
    res = lrkit.find_lr(
        model, opt, loader, step_fn=recording_step(seen, opt), start_lr=1e-5, end_lr=1e-2,
        num_steps=20, mode=mode, progress=False, diverge_threshold=1e9,
    )  # fmt: skip
    n = 19
    if mode == "exp":
        expected = [1e-5 * (1e-2 / 1e-5) ** (i / n) for i in range(20)]
    else:
        expected = [1e-5 + (1e-2 - 1e-5) * i / n for i in range(20)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert res.lrs == seen
    assert res.lrs[-1] == 1e-2
    assert res.lrs[0] == 1e-5
    assert res.stop_reason == "completed"


def test_lr_schedule_is_geometric_in_exp_mode() -> None:
    lrs = np.array(lr_schedule(1e-7, 10.0, 100, "exp"))
    ratios = lrs[1:] / lrs[:-1]
    assert np.allclose(ratios, ratios[0], rtol=1e-12)
    assert lrs[-1] == 10.0


def test_short_loader_is_cycled_with_fresh_epochs(data: TensorDataset) -> None:
    loader = DataLoader(data, batch_size=64, shuffle=True)  # 4 batches
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[float] = []
    res = lrkit.find_lr(
        model, opt, loader, step_fn=recording_step(seen, opt), start_lr=1e-6, end_lr=1e-3,
        num_steps=30, progress=False,
    )  # fmt: skip
    assert len(res.lrs) == 30
    assert len(seen) == 30


def test_divergence_stops_the_test_and_says_where(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), start_lr=1e-3, end_lr=1e4, num_steps=100,
        progress=False, smooth=0.5,
    )  # fmt: skip
    assert res.stop_step is not None and res.stop_step < 99
    assert len(res.lrs) == res.stop_step + 1
    assert "diverged" in res.stop_reason or "non-finite" in res.stop_reason
    if "diverged" in res.stop_reason:
        assert res.smoothed[-1] > 4.0 * min(res.smoothed)


def test_nan_loss_stops_cleanly_and_is_not_recorded(loader: DataLoader) -> None:
    calls = {"n": 0}
    criterion = nn.CrossEntropyLoss()

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = criterion(model(batch[0]), batch[1])
        return loss * float("nan") if calls["n"] == 8 else loss

    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(model, opt, loader, step_fn=step, num_steps=20, progress=False)
    assert len(res.lrs) == 7
    assert res.stop_step == 7
    assert "non-finite" in res.stop_reason and "nan" in res.stop_reason
    assert all(math.isfinite(v) for v in res.losses)


def test_smoothing_is_a_bias_corrected_ema(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), num_steps=10, end_lr=1e-3, smooth=0.9,
        progress=False,
    )  # fmt: skip
    avg, expected = 0.0, []
    for t, value in enumerate(res.losses, start=1):
        avg = 0.9 * avg + 0.1 * value
        expected.append(avg / (1 - 0.9**t))
    assert res.smoothed == pytest.approx(expected, rel=1e-12)
    assert res.smoothed[0] == pytest.approx(res.losses[0], rel=1e-12)


def test_smooth_zero_keeps_the_raw_curve(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), num_steps=10, smooth=0.0, end_lr=1e-3,
        progress=False,
    )  # fmt: skip
    assert res.smoothed == res.losses


def test_accumulation_averages_the_window_and_steps_once_per_window() -> None:
    # Batches carry their own loss value; the model only makes the loss differentiable.
    values = torch.arange(1.0, 13.0)
    loader = DataLoader(TensorDataset(values), batch_size=1, shuffle=False)
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = {"n": 0}
    original_step = opt.step

    def counting_step(*args: Any, **kwargs: Any) -> Any:
        steps["n"] += 1
        return original_step(*args, **kwargs)

    opt.step = counting_step  # type: ignore[method-assign]

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        return model.weight.sum() * 0 + batch[0].sum()

    res = lrkit.find_lr(
        model, opt, loader, step_fn=step, num_steps=6, accumulation_steps=2, end_lr=1e-3,
        progress=False, diverge_threshold=100,
    )  # fmt: skip
    assert res.losses == [1.5, 3.5, 5.5, 7.5, 9.5, 11.5]
    assert steps["n"] == 6


def test_step_fn_handles_dict_batches_and_models_returning_their_own_loss() -> None:
    class SelfLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_model()

        def forward(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
            return {"loss": nn.functional.cross_entropy(self.net(features), labels)}

    data = make_data()

    class DictData(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
        def __len__(self) -> int:
            return len(data)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            x, y = data[i]
            return {"features": x, "labels": y}

    model = SelfLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    res = lrkit.find_lr(
        model, opt, DataLoader(DictData(), batch_size=32), num_steps=30, progress=False,
        step_fn=lambda m, b: m(**b)["loss"],
    )  # fmt: skip
    assert len(res.lrs) >= 5
    assert all(math.isfinite(v) for v in res.losses)


def test_non_pair_batches_without_step_fn_get_a_clear_error() -> None:
    loader = DataLoader(TensorDataset(torch.randn(8, 8)), batch_size=4)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="step_fn"):
        lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=5, progress=False)


def test_param_group_ratios_are_kept_and_x_axis_is_the_largest_group(loader: DataLoader) -> None:
    model = make_model()
    first, last = model[0], model[2]
    opt = torch.optim.SGD(
        [{"params": first.parameters(), "lr": 0.01}, {"params": last.parameters(), "lr": 0.1}],
        lr=0.1,
    )
    seen: list[tuple[float, float]] = []
    criterion = nn.CrossEntropyLoss()

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
        return criterion(model(batch[0]), batch[1])

    # minimum always suggests (auto may decline on so short a test), so the check below runs
    res = lrkit.find_lr(model, opt, loader, step_fn=step, num_steps=10, end_lr=1e-2,
                        method="minimum", progress=False)  # fmt: skip
    for (lo, hi), lr in zip(seen, res.lrs, strict=True):
        assert hi == lr
        assert lo == pytest.approx(0.1 * hi, rel=1e-12)
    assert res.group_ratios == pytest.approx([0.1, 1.0])
    assert res.suggestion is not None
    assert res.group_suggestions == pytest.approx([0.1 * res.suggestion, res.suggestion])
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]


def test_same_seed_gives_the_same_curve_bit_for_bit(loader: DataLoader) -> None:
    def run(seed: int) -> FinderResult:
        model = make_model()
        opt = torch.optim.Adam(model.parameters())
        return lrkit.find_lr(
            model, opt, loader, nn.CrossEntropyLoss(), num_steps=40, seed=seed, progress=False
        )

    a, b, c = run(3), run(3), run(4)
    assert a.losses == b.losses
    assert a.lrs == b.lrs
    assert a.losses != c.losses


def test_runs_report_geometric_median_and_spread(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    res = lrkit.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), num_steps=60, runs=3, seed=0, progress=False
    )
    assert res.runs == 3
    assert len({tuple(c.losses[:20]) for c in res.curves}) == 3  # different data orders
    for name, values in res.per_run.items():
        found = [v for v in values if v is not None]
        if res.suggestions[name] is None:
            continue
        logs = np.log10(found)
        assert math.log10(res.suggestions[name]) == pytest.approx(np.median(logs))
        assert res.spread[name] == pytest.approx(logs.max() - logs.min())
        assert (name in res.unstable) == (res.spread[name] > 0.5)


def test_unstable_suggestions_are_flagged_in_repr_and_plot() -> None:
    res = FinderResult(
        curves=[
            Curve([1e-3, 1e-2, 1e-1], [2.0, 1.0, 3.0], [2.0, 1.0, 3.0]),
            Curve([1e-3, 1e-2, 1e-1], [2.0, 1.5, 1.0], [2.0, 1.5, 1.0]),
        ],
        suggestions={"auto": 1e-2, "minimum": 1e-3},
        notes={},
        spread={"auto": 1.0, "minimum": 0.1},
        per_run={"auto": [1e-3, 1e-1], "minimum": [1e-3, 1.2e-3]},
    )
    assert res.unstable == ["auto"]
    assert "UNSTABLE" in repr(res)
    assert len(res.caveats) == 1 and "auto moved more than 0.5 decade" in res.caveats[0]
    fig = res.plot()
    ax = fig.axes[0]
    assert "unstable" in ax.get_title()
    assert any("UNSTABLE" in t.get_text() for t in ax.texts)


def test_val_loader_gives_a_noise_free_curve_used_for_suggestions(data: TensorDataset) -> None:
    train = DataLoader(data, batch_size=16, shuffle=True)
    val = DataLoader(make_data(seed=1), batch_size=64)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(
        model, opt, train, nn.CrossEntropyLoss(), val_loader=val, val_batches=2,
        num_steps=30, end_lr=1.0, progress=False,
    )  # fmt: skip
    assert res.val_losses is not None and len(res.val_losses) == len(res.lrs)
    # The first point's update is tiny, so the val loss is that of the initial model.
    model_copy = make_model()
    with torch.no_grad():
        xs = [b for _, b in zip(range(2), val, strict=False)]
        expected = sum(nn.functional.cross_entropy(model_copy(x), y) for x, y in xs) / 2
    assert res.val_losses[0] == pytest.approx(float(expected), rel=1e-4)
    direct = lrkit.suggest.minimum(np.array(res.lrs), np.array(res.val_losses))
    assert res.suggestions["minimum"] == pytest.approx(direct.lr)


def test_amp_on_cpu_runs_under_autocast(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    dtypes: list[torch.dtype] = []
    criterion = nn.CrossEntropyLoss()

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        out = model(batch[0])
        dtypes.append(out.dtype)
        return criterion(out, batch[1])

    res = lrkit.find_lr(model, opt, loader, step_fn=step, num_steps=10, amp=True, progress=False)
    assert len(res.lrs) == 10
    assert dtypes[0] == torch.bfloat16


def test_disk_cache_deletes_its_temporary_file(loader: DataLoader) -> None:
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "lrkit-snapshot-*")))
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    lrkit.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), num_steps=10, cache="disk", progress=False
    )
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "lrkit-snapshot-*")))
    assert after == before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_result_round_trips_through_json(tmp_path: Any, loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), num_steps=20, runs=2, progress=False
    )
    path = res.save(tmp_path / "finder.json")
    back = FinderResult.load(path)
    assert back.to_dict() == res.to_dict()
    assert back.suggestion == res.suggestion
    assert repr(back) == repr(res)


def test_plot_marks_every_suggestion_and_saves(tmp_path: Any, loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), progress=False)
    fig = res.plot(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.texts]  # beside their lines, not in the legend
    for name, lr in res.suggestions.items():
        if lr is not None:
            assert any(label.startswith(f"rule {name} (raw) ") for label in labels)


def test_plot_draws_into_a_given_axes(loader: DataLoader) -> None:
    from matplotlib.figure import Figure

    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=20, progress=False)
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert res.plot(ax=ax2) is fig
    assert len(ax2.lines) >= 2 and not ax1.lines


def test_suggestion_is_the_chosen_method(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), num_steps=30, method="minimum", progress=False
    )
    assert res.suggestion == res.suggestions["minimum"]
    assert set(res.suggestions) == {"auto", "steepest", "valley", "minimum", "steep", "slide"}


def test_a_custom_rule_reads_the_smoothed_curve_and_is_reported_by_name(
    loader: DataLoader,
) -> None:
    seen: list[np.ndarray] = []

    def lowest(lrs: np.ndarray, losses: np.ndarray) -> suggest.Suggestion:
        seen.append(losses)
        i = int(np.argmin(losses))
        return suggest.Suggestion(float(lrs[i]), i, "lowest point")

    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=30, method=lowest,
                        progress=False)  # fmt: skip
    assert res.method == "lowest" and list(res.suggestions)[-1] == "lowest"
    assert seen[0].tolist() == res.smoothed != res.losses
    assert res.suggestion == res.lrs[int(np.argmin(res.smoothed))]
    assert res.notes["lowest"] == "lowest point"
    assert FinderResult.from_dict(res.to_dict()).suggestion == res.suggestion


def test_a_custom_rule_marked_raw_input_reads_the_raw_losses(loader: DataLoader) -> None:
    seen: list[np.ndarray] = []

    @suggest.raw_input
    def lowest_raw(lrs: np.ndarray, losses: np.ndarray) -> suggest.Suggestion:
        seen.append(losses)
        i = int(np.argmin(losses))
        return suggest.Suggestion(float(lrs[i]), i, "lowest raw point")

    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=30,
                        method=lowest_raw, progress=False)  # fmt: skip
    assert seen[0].tolist() == res.losses != res.smoothed
    assert res.suggestion == res.lrs[int(np.argmin(res.losses))]


def test_a_custom_rule_named_like_a_built_in_one_is_refused(loader: DataLoader) -> None:
    def valley(lrs: np.ndarray, losses: np.ndarray) -> suggest.Suggestion:
        return suggest.Suggestion(None, None, "never")

    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="named 'valley', like a built-in rule; rename"):
        lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), method=valley, progress=False)
    res = lrkit.find_lr(
        model,
        opt,
        loader,
        nn.CrossEntropyLoss(),
        num_steps=20,
        method=suggest.valley,
        progress=False,
    )  # the built-in itself is fine
    assert res.method == "valley"


def test_config_is_frozen_and_checked_at_construction() -> None:
    config = FinderConfig(num_steps=20, mode="linear")
    assert config.lrs() == lr_schedule(1e-7, 10.0, 20, "linear")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_steps = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"num_steps must be an integer >= 5 \(got 3\)"):
        FinderConfig(num_steps=3)


# ----------------------------------------------------------------------------- bad input

BAD = [
    ({"start_lr": 0.0}, "start_lr"),
    ({"start_lr": -1e-3}, "start_lr"),
    ({"start_lr": 1e-2, "end_lr": 1e-3}, "end_lr must be > start_lr"),
    ({"num_steps": 4}, "num_steps"),
    ({"num_steps": 10.5}, "num_steps"),
    ({"mode": "log"}, "mode"),
    ({"smooth": 1.0}, "smooth"),
    ({"smooth": -0.1}, "smooth"),
    ({"diverge_threshold": 1.0}, "diverge_threshold"),
    ({"runs": 0}, "runs"),
    ({"accumulation_steps": 0}, "accumulation_steps"),
    ({"val_batches": 0}, "val_batches"),
    ({"cache": "gpu"}, "cache"),
    ({"method": "best"}, "method"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_arguments_fail_before_any_step(
    kwargs: dict[str, Any], message: str, loader: DataLoader
) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.clone() for p in model.parameters()]
    calls = {"n": 0}

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    with pytest.raises(ValueError, match=message):
        lrkit.find_lr(model, opt, loader, step_fn=step, progress=False, **kwargs)
    assert calls["n"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_error_messages_name_the_value_and_the_fix(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"end_lr must be > start_lr \(got 0.001 <= 0.01\)"):
        lrkit.find_lr(model, opt, loader, nn.MSELoss(), start_lr=1e-2, end_lr=1e-3)


def test_empty_loader_is_refused(data: TensorDataset) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    empty = DataLoader(TensorDataset(torch.empty(0, 8), torch.empty(0)), batch_size=4)
    with pytest.raises(ValueError, match="train_loader is empty"):
        lrkit.find_lr(model, opt, empty, nn.CrossEntropyLoss())


def test_empty_iterable_without_len_is_refused_and_nothing_changes() -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.clone() for p in model.parameters()]

    def batches() -> Any:
        yield from ()

    class NoLen:
        def __iter__(self) -> Any:
            return batches()

    with pytest.raises(ValueError, match="yielded no batches"):
        lrkit.find_lr(model, opt, NoLen(), nn.CrossEntropyLoss(), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_needs_criterion_or_step_fn_but_not_both(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="criterion"):
        lrkit.find_lr(model, opt, loader)
    with pytest.raises(ValueError, match="not both"):
        lrkit.find_lr(model, opt, loader, nn.MSELoss(), step_fn=lambda m, b: m(b).sum())


def test_optimizer_of_another_model_is_refused(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(make_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="none of the model's parameters"):
        lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss())


def test_non_scalar_loss_gets_a_clear_error(loader: DataLoader) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"scalar tensor.*\.mean\(\)"):
        lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(reduction="none"), progress=False)


def test_suggestion_for_a_schedule_scales_by_its_measured_factor(
    loader: DataLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), for_schedule="one_cycle",
                        progress=False)  # fmt: skip
    auto = res.suggestions["auto"]
    assert auto is not None
    factors = suggest.SCHEDULE_FACTORS
    assert res.suggestion == pytest.approx(factors["one_cycle"] * auto)
    assert res.suggestion_for("constant") == pytest.approx(factors["constant"] * auto)
    monkeypatch.setitem(factors, "one_cycle", 3.0)
    assert res.suggestion == pytest.approx(3 * auto)
    res.method = "minimum"  # the factors are measured for auto; other rules are as they are
    assert res.suggestion == res.suggestions["minimum"]
    assert FinderResult.load(res.save(Path(tempfile.mkdtemp()) / "r.json")).for_schedule == (
        "one_cycle"
    )
    with pytest.raises(ValueError, match="schedule must be one of"):
        res.suggestion_for("linear")
    with pytest.raises(ValueError, match="for_schedule must be one of"):
        lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), for_schedule="sgdr")


@pytest.mark.parametrize(
    ("steps", "accumulation", "flagged"),
    [(16, 1, False), (20, 1, True), (8, 2, False), (10, 2, True)],
)
def test_a_range_test_that_cycles_tiny_data_says_so(
    data: TensorDataset, steps: int, accumulation: int, flagged: bool
) -> None:
    loader = DataLoader(data, batch_size=64, shuffle=True)  # 4 batches
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=steps,
                        accumulation_steps=accumulation, progress=False)  # fmt: skip
    assert res.data_passes == steps * accumulation / 4
    tiny = [c for c in res.caveats if "went through the training data" in c]
    assert bool(tiny) == flagged
    assert ("TINY DATA" in repr(res)) == flagged == res.tiny_data
    if flagged:
        assert f"{res.data_passes:.1f} times" in tiny[0] and "around-finder" in tiny[0]


def test_a_loader_without_length_has_no_data_passes(data: TensorDataset) -> None:
    class Stream:
        def __iter__(self) -> Any:
            return iter(DataLoader(data, batch_size=64))

    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lrkit.find_lr(model, opt, Stream(), nn.CrossEntropyLoss(), num_steps=40, progress=False)
    assert res.data_passes is None
    assert res.caveats == []


def _frozen_model() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, opt


def test_a_fully_frozen_model_is_refused_before_the_test() -> None:
    model, opt = _frozen_model()
    loader = DataLoader(make_data(), batch_size=32)
    with pytest.raises(ValueError, match=r"is frozen .*unfreeze"):
        lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), progress=False)


def test_a_detached_loss_is_refused_with_lrkits_message() -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(make_data(), batch_size=32)

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]), batch[1]).detach()

    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="does not require grad: it was detached"):
        lrkit.find_lr(model, opt, loader, step_fn=step, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_wrong_shape_batches_fail_with_the_shapes_named() -> None:
    model = make_model()  # 8 features in
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    wide = TensorDataset(torch.randn(64, 5), torch.zeros(64, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"model failed on a batch of inputs tensor float32 \[32, 5"
    ):
        lrkit.find_lr(model, opt, DataLoader(wide, batch_size=32), nn.CrossEntropyLoss(),
                      progress=False)  # fmt: skip
    short = TensorDataset(torch.randn(64, 8), torch.zeros(64, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"loss failed on outputs .*targets tensor int64 \[32, 2"):
        lrkit.find_lr(model, opt, DataLoader(short, batch_size=32), nn.CrossEntropyLoss(),
                      progress=False)  # fmt: skip


def test_an_elementwise_loss_refuses_targets_that_would_broadcast() -> None:
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    flat = TensorDataset(torch.randn(64, 8), torch.randn(64))  # outputs [32, 1], targets [32]
    with pytest.raises(ValueError, match=r"MSELoss compares .*broadcast silently"):
        lrkit.find_lr(model, opt, DataLoader(flat, batch_size=32), nn.MSELoss(), progress=False)


def test_nan_parameters_are_refused_up_front_by_name() -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    loader = DataLoader(make_data(), batch_size=32)
    with pytest.raises(ValueError, match=r"parameter '2.weight' holds 1 NaN/inf values of 48"):
        lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), progress=False)


def _two_close_rules() -> FinderResult:
    lrs = list(np.geomspace(1e-5, 1.0, 60))
    losses = [2.0 - math.tanh(3 * (math.log10(lr) + 2)) + max(0.0, math.log10(lr) + 0.7) * 8
              for lr in lrs]  # fmt: skip
    curve = Curve(lrs=lrs, losses=losses, smoothed=losses)
    summary = suggest.summarize([curve], suggest.METHODS)
    return FinderResult([curve], summary.suggestions, summary.notes, num_steps=60)


def test_repr_shows_the_suggestion_for_the_schedule_apart_from_the_raw_rules() -> None:
    res = _two_close_rules()
    assert res.suggestion is not None and res.suggestion != res.suggestions["auto"]
    text = repr(res)
    assert f"suggestion={res.suggestion:.3g} [constant schedule, from auto]" in text
    assert f"rules (raw): auto={res.suggestions['auto']:.3g}" in text
    assert f"suggestion {res.suggestion:.3g} for a constant schedule" in res.suggestion_label


def test_the_figures_mark_the_suggestion_and_label_each_line_at_its_own_lr() -> None:
    pytest.importorskip("plotly")
    from lrkit.report.figures import finder_figure

    res = _two_close_rules()
    assert res.suggestion is not None
    fig = finder_figure(res)
    assert f"suggestion {res.suggestion:.3g}" in fig.layout.title.text
    marks = {a.text: a.x for a in fig.layout.annotations}
    # a log axis takes annotation x as log10(lr): each label sits at its own line
    assert marks[f"suggestion (constant) {res.suggestion:.3g}"] == pytest.approx(
        math.log10(res.suggestion)
    )
    for name, lr in res.suggestions.items():
        if lr is not None:
            assert marks[res.rule_label(name)] == pytest.approx(math.log10(lr))
    lines = sorted(s.x0 for s in fig.layout.shapes)
    assert lines == sorted([res.suggestion, *(v for v in res.suggestions.values() if v)])

    mpl = res.plot()
    texts = {t.get_text(): t.get_position()[0] for t in mpl.axes[0].texts}
    assert texts[f"suggestion (constant) {res.suggestion:.3g}"] == res.suggestion
    assert texts[res.rule_label("auto")] == res.suggestions["auto"]
    assert f"suggestion {res.suggestion:.3g}" in mpl.axes[0].get_title()
