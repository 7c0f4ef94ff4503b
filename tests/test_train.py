"""The fit loop: it learns, records every step, applies schedules, stops cleanly."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.conftest import make_data, make_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit import schedules as S
from lrkit.train import History, fit


def split() -> tuple[TensorDataset, TensorDataset]:
    x, y = make_data(768).tensors  # one labelling rule for train and val
    return TensorDataset(x[:512], y[:512]), TensorDataset(x[512:], y[512:])


def loaders(seed: int = 0) -> tuple[DataLoader, DataLoader]:
    train, val = split()
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(train, batch_size=32, shuffle=True, generator=gen), DataLoader(
        val, batch_size=128
    )


def test_loss_falls_and_accuracy_rises_on_a_learnable_task() -> None:
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    h = fit(model, opt, train, nn.CrossEntropyLoss(), 5, val_loader=val, progress=False)
    assert h.epochs[-1]["train_loss"] < 0.5 * h.epochs[0]["train_loss"]
    assert h.epochs[-1]["accuracy"] > 0.8
    assert h.stop_reason == "completed" and not h.stopped_early


def test_history_has_one_entry_per_step_and_per_epoch() -> None:
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    h = fit(model, opt, train, nn.CrossEntropyLoss(), 3, val_loader=val, progress=False)
    assert len(h.step_lr) == len(h.step_loss) == 3 * len(train)
    assert [e["epoch"] for e in h.epochs] == [1, 2, 3]
    assert set(h.epochs[0]) == {"epoch", "train_loss", "val_loss", "accuracy"}
    assert h.epochs[0]["train_loss"] == pytest.approx(sum(h.step_loss[: len(train)]) / len(train))
    assert h.wall_s > 0


def test_val_loss_and_accuracy_are_exact_means_over_samples() -> None:
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    h = fit(model, opt, train, nn.CrossEntropyLoss(), 1, val_loader=val, progress=False)
    x, y = split()[1].tensors
    with torch.no_grad():
        out = model(x)
    assert h.epochs[0]["val_loss"] == pytest.approx(float(nn.functional.cross_entropy(out, y)))
    assert h.epochs[0]["accuracy"] == pytest.approx(float((out.argmax(1) == y).float().mean()))


def test_schedule_is_applied_per_step() -> None:
    train, _ = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    n = 2 * len(train)
    sched = S.one_cycle(max_lr=0.1, total_steps=n)
    h = fit(model, opt, train, nn.CrossEntropyLoss(), 2, schedule=sched, progress=False)
    assert h.step_lr == pytest.approx([sched(t) for t in range(n)], rel=1e-12)


def test_spec_string_schedule_and_plateau_fed_by_val_loss() -> None:
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = fit(model, opt, train, nn.CrossEntropyLoss(), 2,
            schedule="cosine(max_lr=0.1, total_steps=32)", progress=False)  # fmt: skip
    assert h.step_lr[0] == 0.1 and h.step_lr[-1] < 0.01

    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)  # never halves the loss: plateau acts
    plateau = lrkit.ReduceOnPlateau(patience=0, factor=0.5, threshold=0.5)
    h = fit(model, opt, train, nn.CrossEntropyLoss(), 4, schedule=plateau, val_loader=val,
            progress=False)  # fmt: skip
    per_epoch = h.step_lr[:: len(train)]
    assert per_epoch == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])


def test_plateau_without_val_loader_is_refused() -> None:
    train, _ = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="val_loader"):
        fit(model, opt, train, nn.CrossEntropyLoss(), 1, schedule=lrkit.ReduceOnPlateau())


def test_divergence_is_a_result_not_a_crash() -> None:
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    h = fit(model, opt, train, nn.CrossEntropyLoss(), 5, val_loader=val, progress=False)
    assert h.diverged and h.stopped_early
    assert "non-finite loss" in h.stop_reason
    assert all(math.isfinite(v) for v in h.step_loss)
    assert len(h.step_loss) < 5 * len(train)


def test_same_seed_same_history_bit_for_bit() -> None:
    def run(seed: int) -> History:
        train = DataLoader(make_data(512), batch_size=32, shuffle=True)  # global RNG order
        model = make_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        return fit(model, opt, train, nn.CrossEntropyLoss(), 2, seed=seed, progress=False)

    a, b, c = run(5), run(5), run(6)
    assert a.step_loss == b.step_loss and a.epochs == b.epochs
    assert a.step_loss != c.step_loss


def test_callback_can_stop_training() -> None:
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def early_stop(history: History) -> bool:
        return len(history.epochs) >= 2

    h = fit(model, opt, train, nn.CrossEntropyLoss(), 10, val_loader=val, callbacks=[early_stop],
            progress=False)  # fmt: skip
    assert len(h.epochs) == 2 and h.stopped_early
    assert "early_stop" in h.stop_reason


def test_step_fn_records_val_loss_without_metrics() -> None:
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    h = fit(model, opt, train, step_fn=step, epochs=1, val_loader=val, progress=False)
    assert set(h.epochs[0]) == {"epoch", "train_loss", "val_loss"}
    with pytest.raises(ValueError, match="metrics"):
        fit(model, opt, train, step_fn=step, metrics=("accuracy",), progress=False)


def test_history_round_trips(tmp_path: Path) -> None:
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    h = fit(model, opt, train, nn.CrossEntropyLoss(), 1, val_loader=val, progress=False)
    assert History.load(h.save(tmp_path / "h.json")) == h


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"metrics": ("f1",)}, "unknown metric 'f1'"),
        ({"schedule": 3}, "schedule must be"),
        ({"criterion": None}, "criterion"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    train, _ = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    args: dict[str, Any] = {"criterion": nn.CrossEntropyLoss(), "epochs": 1} | kwargs
    with pytest.raises((ValueError, TypeError), match=message):
        fit(model, opt, train, progress=False, **args)


def test_a_schedule_shorter_than_the_run_is_refused_with_the_numbers() -> None:
    # the case: one-cycle over 4 steps on a 12-step run trained 8 steps at 4e-7
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(make_data(n=192), batch_size=32)  # 6 batches, 2 epochs: 12 steps
    short = lrkit.schedules.one_cycle(0.1, total_steps=4)
    with pytest.raises(ValueError, match=r"total_steps=4 .* takes 12 optimizer steps") as err:
        lrkit.fit(model, opt, loader, nn.CrossEntropyLoss(), 2, schedule=short, progress=False)
    assert "total_steps=12" in str(err.value)
    assert opt.param_groups[0]["lr"] == 0.1  # refused before touching the optimizer
    for short in ("cosine(max_lr=0.1, total_steps=11)",
                  "warmup(linear(0.1, 0.0, total_steps=6), warmup_steps=5)"):  # fmt: skip
        with pytest.raises(ValueError, match="total_steps=12"):
            lrkit.fit(model, opt, loader, nn.CrossEntropyLoss(), 2, schedule=short,
                      progress=False)  # fmt: skip


def test_a_schedule_that_fits_or_never_ends_is_accepted() -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(make_data(n=192), batch_size=32)
    for ok in ("one_cycle(max_lr=0.1, total_steps=12)", "exponential(0.1, gamma=0.9)",
               "warmup(cosine(max_lr=0.1, total_steps=7), warmup_steps=5)"):  # fmt: skip
        lrkit.fit(model, opt, loader, nn.CrossEntropyLoss(), 2, schedule=ok, progress=False)


def test_a_resumed_schedule_counts_the_steps_it_already_took() -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(make_data(n=192), batch_size=32)
    sched = lrkit.to_torch(opt, lrkit.schedules.cosine(max_lr=0.1, total_steps=12))
    lrkit.fit(model, opt, loader, nn.CrossEntropyLoss(), 1, schedule=sched, progress=False)
    with pytest.raises(ValueError, match=r"\(6 steps left\)"):
        lrkit.fit(model, opt, loader, nn.CrossEntropyLoss(), 2, schedule=sched, progress=False)
