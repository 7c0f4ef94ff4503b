"""The vectorized trainer against its reference twin: K plain torch.optim runs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tests.conftest import make_data
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.schedules import for_run
from lrkit.train import History, fit
from lrkit.vectorized import fit_many

LRS = [0.003, 0.03, 0.1]
SEEDS = [0, 1, 2]
CASES: dict[str, dict[str, Any]] = {
    "sgd": {},
    "sgd-momentum-wd": {"momentum": 0.9, "weight_decay": 1e-3, "dampening": 0.1},
    "sgd-nesterov": {"momentum": 0.9, "nesterov": True},
    "adam": {"weight_decay": 1e-3},
    "adamw": {"betas": (0.8, 0.99)},
    "nadam": {"weight_decay": 1e-4},
}
TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
         "nadam": torch.optim.NAdam}  # fmt: skip


def model_factory(dtype: torch.dtype, batchnorm: bool = False) -> Any:
    def make(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        layers: list[nn.Module] = [nn.Linear(8, 16)]
        if batchnorm:
            layers.append(nn.BatchNorm1d(16))
        layers += [nn.ReLU(), nn.Linear(16, 3)]
        return nn.Sequential(*layers).to(dtype)

    return make


def data(dtype: torch.dtype) -> tuple[TensorDataset, TensorDataset]:
    x, y = make_data(400).tensors
    x = x.to(dtype)
    return TensorDataset(x[:320], y[:320]), TensorDataset(x[320:], y[320:])


def loader(ds: TensorDataset) -> DataLoader:
    return DataLoader(ds, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(7))


def reference(name: str, kwargs: dict[str, Any], dtype: torch.dtype, schedule: str | None,
              epochs: int, batchnorm: bool = False) -> list[History]:  # fmt: skip
    train, val = data(dtype)
    out = []
    make = model_factory(dtype, batchnorm)
    for lr, seed in zip(LRS, SEEDS, strict=True):
        model = make(seed)
        steps = epochs * len(loader(train))
        sched = for_run(schedule or "constant", lr, steps)
        opt = TORCH[name.split("-")[0]](model.parameters(), lr=sched(0), **kwargs)
        out.append(fit(model, opt, loader(train), nn.CrossEntropyLoss(), epochs, schedule=sched,
                       val_loader=DataLoader(val, batch_size=40), progress=False))  # fmt: skip
    return out


def vectorized(name: str, kwargs: dict[str, Any], dtype: torch.dtype, schedule: str | None,
               epochs: int, batchnorm: bool = False) -> list[History]:  # fmt: skip
    train, val = data(dtype)
    return fit_many(
        model_factory(dtype, batchnorm), loader(train), nn.CrossEntropyLoss(),
        optimizer=name.split("-")[0], lrs=LRS, seeds=SEEDS, epochs=epochs, schedule=schedule,
        val_loader=DataLoader(val, batch_size=40), progress=False, strategy="vmap", **kwargs,
    )  # fmt: skip


def assert_histories_close(ours: list[History], ref: list[History], rel: float) -> None:
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        assert a.step_lr == pytest.approx(b.step_lr, rel=1e-15)
        assert a.step_loss == pytest.approx(b.step_loss, rel=rel)
        assert len(a.epochs) == len(b.epochs)
        for ea, eb in zip(a.epochs, b.epochs, strict=True):
            assert ea.keys() == eb.keys()
            for key in ea:
                assert ea[key] == pytest.approx(eb[key], rel=rel, abs=rel), key
        assert a.diverged == b.diverged


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_members_equal_plain_runs(case: str) -> None:
    kwargs = CASES[case]
    ours = vectorized(case, kwargs, torch.float64, None, epochs=5)  # 50 steps
    assert len(ours[0].step_loss) == 50
    assert_histories_close(ours, reference(case, kwargs, torch.float64, None, 5), rel=1e-12)


@pytest.mark.parametrize("case", ["sgd-momentum-wd", "adam", "nadam"])
def test_float32_members_match_within_float32_noise(case: str) -> None:
    kwargs = CASES[case]
    ours = vectorized(case, kwargs, torch.float32, None, epochs=2)
    assert_histories_close(ours, reference(case, kwargs, torch.float32, None, 2), rel=2e-4)


@pytest.mark.parametrize("case", ["sgd-momentum-wd", "adamw"])
def test_one_cycle_schedule_with_momentum_matches(case: str) -> None:
    kwargs = CASES[case]
    ours = vectorized(case, kwargs, torch.float64, "one_cycle", epochs=3)
    assert_histories_close(ours, reference(case, kwargs, torch.float64, "one_cycle", 3), 1e-12)
    assert ours[0].step_lr[0] == pytest.approx(LRS[0] / 25)


def test_batchnorm_members_keep_their_own_running_stats() -> None:
    kwargs = CASES["sgd-momentum-wd"]
    ours = vectorized("sgd-momentum-wd", kwargs, torch.float64, None, 3, batchnorm=True)
    ref = reference("sgd-momentum-wd", kwargs, torch.float64, None, 3, batchnorm=True)
    # val loss is computed in eval mode, from each member's own running statistics
    assert_histories_close(ours, ref, rel=1e-12)


def test_a_diverging_member_is_frozen_and_the_others_are_untouched() -> None:
    train, val = data(torch.float64)
    lrs = [0.05, 1e6, 0.01]
    ours = fit_many(model_factory(torch.float64), loader(train), nn.CrossEntropyLoss(), lrs=lrs,
                    seeds=[0, 1, 2], epochs=4, val_loader=DataLoader(val, batch_size=40),
                    progress=False, strategy="vmap")  # fmt: skip
    assert ours[1].diverged and "non-finite" in ours[1].stop_reason
    assert not ours[0].diverged and not ours[2].diverged
    for member, lr, seed in ((0, 0.05, 0), (2, 0.01, 2)):
        model = model_factory(torch.float64)(seed)
        ref = fit(model, torch.optim.SGD(model.parameters(), lr=lr), loader(train),
                  nn.CrossEntropyLoss(), 4, val_loader=DataLoader(val, batch_size=40),
                  progress=False)  # fmt: skip
        assert_histories_close([ours[member]], [ref], rel=1e-12)
    model = model_factory(torch.float64)(1)
    ref = fit(model, torch.optim.SGD(model.parameters(), lr=1e6), loader(train),
              nn.CrossEntropyLoss(), 4, progress=False)  # fmt: skip
    assert ours[1].step_loss == pytest.approx(ref.step_loss, rel=1e-12)
    assert len(ours[1].epochs) == len(ref.epochs)


def dropout_factory(p: float) -> Any:
    def make(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(8, 16), nn.Dropout(p), nn.ReLU(), nn.Linear(16, 3)).double()

    return make


def test_dropout_members_are_reproducible_for_a_seed_and_draw_independent_masks() -> None:
    train, val = data(torch.float64)

    def run(seed: int) -> list[History]:
        # two members with the same initial weights, LR and batches: only the masks differ
        return fit_many(dropout_factory(0.5), loader(train), nn.CrossEntropyLoss(), 2,
                        lrs=[0.1], seeds=[0, 0], seed=seed, strategy="vmap",
                        val_loader=DataLoader(val, batch_size=40), progress=False)  # fmt: skip

    a, b, c = run(3), run(3), run(4)
    assert [h.step_loss for h in a] == [h.step_loss for h in b]
    assert [h.epochs for h in a] == [h.epochs for h in b]
    assert a[0].step_loss != a[1].step_loss  # independent masks per member
    assert a[0].step_loss != c[0].step_loss  # the masks come from the seeded global RNG


def test_dropout_with_p_zero_members_equal_plain_runs() -> None:
    train, val = data(torch.float64)
    ours = fit_many(dropout_factory(0.0), loader(train), nn.CrossEntropyLoss(), 2, lrs=LRS,
                    seeds=SEEDS, strategy="vmap", val_loader=DataLoader(val, batch_size=40),
                    progress=False)  # fmt: skip
    ref = fit_many(dropout_factory(0.0), loader(train), nn.CrossEntropyLoss(), 2, lrs=LRS,
                   seeds=SEEDS, strategy="loop", val_loader=DataLoader(val, batch_size=40),
                   progress=False)  # fmt: skip
    assert_histories_close(ours, ref, rel=1e-12)


def test_an_optimizer_factory_runs_through_its_batched_twin() -> None:
    train, val = data(torch.float64)

    def sgd(params: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr, momentum=0.9, weight_decay=1e-3)

    ours = fit_many(model_factory(torch.float64), loader(train), nn.CrossEntropyLoss(), 3,
                    optimizer=sgd, lrs=LRS, seeds=SEEDS, strategy="vmap",
                    val_loader=DataLoader(val, batch_size=40), progress=False)  # fmt: skip
    kwargs = {"momentum": 0.9, "weight_decay": 1e-3}
    assert_histories_close(ours, reference("sgd", kwargs, torch.float64, None, 3), rel=1e-12)


def test_a_factory_without_a_batched_twin_loops_under_auto_and_is_refused_by_vmap() -> None:
    train, _ = data(torch.float64)

    def rms(params: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(params, lr)

    common: dict[str, Any] = {"optimizer": rms, "lrs": [0.01], "metrics": (), "progress": False}
    got = fit_many(model_factory(torch.float64), loader(train), nn.CrossEntropyLoss(), **common)
    model = model_factory(torch.float64)(0)
    ref = fit(model, rms(model.parameters(), 0.01), loader(train), nn.CrossEntropyLoss(),
              metrics=(), progress=False)  # fmt: skip
    assert got[0].step_loss == ref.step_loss
    with pytest.raises(ValueError, match=r"supports SGD, Adam, AdamW and NAdam \(got RMSprop\)"):
        fit_many(model_factory(torch.float64), loader(train), nn.CrossEntropyLoss(),
                 strategy="vmap", **common)  # fmt: skip


def test_step_fn_members_equal_the_criterion_members() -> None:
    train, val = data(torch.float64)

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    val_loader = DataLoader(val, batch_size=40)
    common: dict[str, Any] = {"lrs": LRS, "seeds": SEEDS, "strategy": "vmap", "metrics": (),
                              "val_loader": val_loader, "progress": False}  # fmt: skip
    ours = fit_many(model_factory(torch.float64), loader(train), None, 2, step_fn=step, **common)
    ref = fit_many(model_factory(torch.float64), loader(train), nn.CrossEntropyLoss(), 2,
                   **common)  # fmt: skip
    assert_histories_close(ours, ref, rel=1e-12)
    with pytest.raises(ValueError, match="metrics need"):
        fit_many(model_factory(torch.float64), loader(train), step_fn=step, lrs=[0.1],
                 metrics=("accuracy",), progress=False)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lrs": [0.1, 0.2], "seeds": [0, 1, 2]}, "same length"),
        ({"lrs": [0.1, -1.0]}, "finite number > 0"),
        ({"lrs": [0.1], "optimizer": "lion"}, "optimizer must be one of"),
        ({"lrs": [0.1], "betas": (0.9, 0.99)}, "sgd takes"),
        ({"lrs": [0.1], "epochs": 0}, "epochs"),
        ({"lrs": [0.1], "nesterov": True}, "nesterov needs momentum"),
        (
            {"lrs": [0.1], "optimizer": lambda p, lr: torch.optim.SGD(p, lr), "momentum": 0.9},
            "go into the factory",
        ),
        ({"lrs": [0.1], "step_fn": lambda m, b: m(b[0]).sum()}, "not both"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    train, _ = data(torch.float32)
    with pytest.raises(ValueError, match=message):
        fit_many(model_factory(torch.float32), loader(train), nn.CrossEntropyLoss(),
                 progress=False, **kwargs)  # fmt: skip


def test_public_entry_point() -> None:
    assert lrkit.fit_many is fit_many


@pytest.mark.parametrize("members", [len(SEEDS), 1])
def test_per_member_loaders_give_each_member_its_own_data_order(members: int) -> None:
    # One member with member_loaders once took its batches for shared data (no member axis).
    train, val = data(torch.float64)
    lrs, seeds = LRS[:members], SEEDS[:members]

    def seeded_loader(seed: int) -> DataLoader:
        return DataLoader(train, batch_size=32, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))  # fmt: skip

    ours = fit_many(model_factory(torch.float64), None, nn.CrossEntropyLoss(),
                    member_loaders=[seeded_loader(s) for s in seeds], lrs=lrs, seeds=seeds,
                    epochs=2, optimizer="adam", strategy="vmap",
                    val_loader=DataLoader(val, batch_size=40), progress=False)  # fmt: skip
    for member, (lr, seed) in enumerate(zip(lrs, seeds, strict=True)):
        model = model_factory(torch.float64)(seed)
        ref = fit(model, torch.optim.Adam(model.parameters(), lr=lr), seeded_loader(seed),
                  nn.CrossEntropyLoss(), 2, val_loader=DataLoader(val, batch_size=40),
                  progress=False)  # fmt: skip
        assert_histories_close([ours[member]], [ref], rel=1e-12)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_vectorized_range_tests_equal_the_serial_runs(opt: str) -> None:
    train, _ = data(torch.float64)
    shuffled = DataLoader(train, batch_size=16, shuffle=True)  # 20 batches, global-RNG order

    def run(vectorized: bool) -> lrkit.FinderResult:
        model = model_factory(torch.float64)(0)
        optimizer = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt == "sgd"
                     else torch.optim.Adam(model.parameters(), lr=1e-3))  # fmt: skip
        return lrkit.find_lr(model, optimizer, shuffled, nn.CrossEntropyLoss(), num_steps=20,
                             end_lr=100.0, runs=3, seed=5, vectorized=vectorized,
                             progress=False)  # fmt: skip

    serial, vec = run(False), run(True)
    assert len(vec.curves) == 3
    assert len({tuple(c.losses[:5]) for c in vec.curves}) == 3  # three data orders
    for a, b in zip(vec.curves, serial.curves, strict=True):
        assert a.lrs == b.lrs
        assert a.losses == pytest.approx(b.losses, rel=1e-12)
        assert a.stop_reason == b.stop_reason
    declined = {k for k, v in serial.suggestions.items() if v is None}  # slide, on 20 steps
    assert declined == {k for k, v in vec.suggestions.items() if v is None}
    found = {k: v for k, v in serial.suggestions.items() if v is not None}
    assert {k: vec.suggestions[k] for k in found} == pytest.approx(found, rel=1e-9)


def test_vectorized_range_test_restores_everything_and_refuses_what_it_cannot_do() -> None:
    train, val = data(torch.float64)
    model = model_factory(torch.float64, batchnorm=True)(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lrkit.find_lr(model, optimizer, loader(train), nn.CrossEntropyLoss(), num_steps=10, runs=2,
                  vectorized=True, progress=False)  # fmt: skip
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="vectorized=False"):
        lrkit.find_lr(model, optimizer, loader(train), nn.CrossEntropyLoss(), runs=2,
                      vectorized=True, val_loader=DataLoader(val), progress=False)  # fmt: skip
    rms = torch.optim.RMSprop(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="SGD, Adam, AdamW and NAdam"):
        lrkit.find_lr(model, rms, loader(train), nn.CrossEntropyLoss(), runs=2,
                      vectorized=True, progress=False)  # fmt: skip


def test_the_vectorized_sweep_executor_runs_the_batched_path_even_on_cpu() -> None:
    from lrkit.sweeps import SweepSpec
    from lrkit.sweeps.executors import vectorized as vectorized_executor
    from lrkit.sweeps.run import TaskResolver

    configs = SweepSpec(task="digits-mlp", lrs=[0.03, 0.3], seeds=[0, 1], epochs=1).expand()
    tasks = TaskResolver()
    got = {cfg_id: out for cfg_id, out in vectorized_executor(configs, tasks)}
    task = tasks(configs[0])

    def twin(strategy: str) -> list[History]:
        return fit_many(task.make_model, None, task.criterion, 1,
                        member_loaders=[task.train_loader(c.seed) for c in configs],
                        lrs=[c.lr for c in configs], seeds=[c.seed for c in configs],
                        optimizer=task.optimizer, val_loader=task.val_loader(),
                        metrics=(task.metric,), strategy=strategy, progress=False,
                        **task.optimizer_kwargs)  # fmt: skip

    batched, looped = twin("vmap"), twin("loop")
    # float32: the batched and the looped losses differ in the last bits, which tells them apart
    assert [h.step_loss for h in batched] != [h.step_loss for h in looped]
    for cfg, b, loop in zip(configs, batched, looped, strict=True):
        history = got[cfg.id]["history"]  # type: ignore[index]
        assert history["step_loss"] == b.step_loss
        assert history["step_loss"] == pytest.approx(loop.step_loss, rel=1e-4)


def test_loop_strategy_is_the_reference_and_auto_uses_it_on_cpu() -> None:
    kwargs = CASES["adam"]
    train, val = data(torch.float64)
    common: dict[str, Any] = {
        "optimizer": "adam",
        "lrs": LRS,
        "seeds": SEEDS,
        "epochs": 2,
        "val_loader": DataLoader(val, batch_size=40),
        "progress": False,
    }
    looped = fit_many(
        model_factory(torch.float64),
        loader(train),
        nn.CrossEntropyLoss(),
        strategy="loop",
        **common,
        **kwargs,
    )
    auto = fit_many(
        model_factory(torch.float64), loader(train), nn.CrossEntropyLoss(), **common, **kwargs
    )
    ref = reference("adam", kwargs, torch.float64, None, 2)
    assert [h.step_loss for h in looped] == [h.step_loss for h in ref]  # bit for bit
    assert [h.step_loss for h in auto] == [h.step_loss for h in ref]
