"""Learning-rate-free optimizers by name: Prodigy and Schedule-Free (AdamW, SGD).

Reference checks run the real packages (``prodigyopt``, ``schedulefree``) in a loop written
by hand beside ``fit``, on the same seed: the weights must be equal bit for bit.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import prodigyopt
import pytest
import schedulefree
import torch
from tests.conftest import make_data, make_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

from lrkit import find_lr, fit, fit_many, schedules, sweep
from lrkit.cli import app
from lrkit.optimizers import (
    DEFAULT_LRS,
    OPTIMIZERS,
    TORCH_NAMES,
    check_range_test,
    is_schedule_free,
)
from lrkit.sweeps import SweepSpec
from lrkit.sweeps.spec import parse_optimizer
from lrkit.tasks import Task
from lrkit.train import BN_BATCHES

LR_FREE = ("prodigy", "schedulefree_adamw", "schedulefree_sgd")
SF_CLASSES = {"schedulefree_adamw": schedulefree.AdamWScheduleFree,
              "schedulefree_sgd": schedulefree.SGDScheduleFree}  # fmt: skip


def tiny_task(optimizer: str = "sgd", batchnorm: bool = False) -> Task:
    return Task(
        name="tiny", make_model=lambda seed: make_model(seed, batchnorm=batchnorm),
        train=make_data(128), val=make_data(64, seed=1), criterion=nn.CrossEntropyLoss(),
        batch_size=32, epochs=2, optimizer=optimizer,
    )  # fmt: skip


def cli_tiny_task() -> Task:
    """For the CLI: a task whose runs take milliseconds."""
    return tiny_task()


def _loader(seed: int = 0) -> DataLoader[Any]:
    return DataLoader(make_data(128), batch_size=32, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))  # fmt: skip


def _val() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = make_data(64, seed=1).tensors
    return x, y


def _val_loader() -> DataLoader[Any]:
    return DataLoader(TensorDataset(*_val()), batch_size=64)


def _same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


# --- the table ---------------------------------------------------------------------------


def test_the_names_are_in_the_one_table_with_their_documented_default_lrs() -> None:
    assert set(LR_FREE) <= set(OPTIMIZERS)
    assert DEFAULT_LRS == {"prodigy": 1.0, "schedulefree_adamw": 0.0025, "schedulefree_sgd": 1.0}
    params = [nn.Parameter(torch.zeros(2))]
    assert isinstance(OPTIMIZERS["prodigy"](params, lr=1.0), prodigyopt.Prodigy)
    for name, cls in SF_CLASSES.items():
        assert isinstance(OPTIMIZERS[name](params, lr=1.0), cls)
    # the packages' own defaults are the ones lrkit documents
    for name in LR_FREE:
        built = OPTIMIZERS[name]([nn.Parameter(torch.zeros(1))])
        assert built.defaults["lr"] == DEFAULT_LRS[name]
    assert set(TORCH_NAMES.values()) == {"sgd", "adam", "adamw", "nadam"}  # twins only


@pytest.mark.parametrize(("name", "package", "extra"), [
    ("prodigy", "prodigyopt", "prodigy"),
    ("schedulefree_adamw", "schedulefree", "schedulefree"),
    ("schedulefree_sgd", "schedulefree", "schedulefree"),
])  # fmt: skip
def test_a_missing_package_is_an_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, name: str, package: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # import now raises ImportError
    with pytest.raises(ImportError, match=rf"pip install \"lrkit\[{extra}\]\""):
        OPTIMIZERS[name]([nn.Parameter(torch.zeros(1))], lr=1.0)


def test_prodigys_weight_decay_line_is_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    OPTIMIZERS["prodigy"]([nn.Parameter(torch.zeros(1))], lr=1.0, weight_decay=0.1)
    assert capsys.readouterr().out == ""


def test_unknown_names_list_the_new_ones() -> None:
    with pytest.raises(ValueError, match="prodigy, schedulefree_adamw, schedulefree_sgd"):
        tiny_task(optimizer="lion")


# --- fit against the real packages -------------------------------------------------------


def test_fit_with_prodigy_and_cosine_equals_the_hand_written_loop() -> None:
    """Prodigy's options pass through; a lrkit schedule drives its lr multiplier."""
    kwargs = {"weight_decay": 0.01, "d_coef": 2.0, "safeguard_warmup": True,
              "use_bias_correction": False}  # fmt: skip
    epochs, steps = 2, 2 * len(_loader())
    sched = schedules.cosine(1.0, steps)

    model = make_model(0)
    opt = OPTIMIZERS["prodigy"](model.parameters(), lr=1.0, **kwargs)
    history = fit(model, opt, _loader(), nn.CrossEntropyLoss(), epochs, schedule=sched,
                  seed=0, progress=False, metrics=())  # fmt: skip

    ref = make_model(0)
    ref_opt = prodigyopt.Prodigy(ref.parameters(), lr=1.0, **kwargs)
    torch.manual_seed(0)
    loader = _loader(0)
    losses, k = [], 0
    for _ in range(epochs):
        for x, y in loader:
            for group in ref_opt.param_groups:
                group["lr"] = sched(k)
            ref_opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(ref(x), y)
            loss.backward()
            ref_opt.step()
            losses.append(float(loss.detach()))
            k += 1
    _same_weights(model, ref)
    assert history.step_loss == losses
    assert opt.param_groups[0]["d"] == ref_opt.param_groups[0]["d"] > 1e-6  # D adapted


def _hand_schedule_free(
    name: str, epochs: int, lr: float, batchnorm: bool, evaluate: bool = True
) -> tuple[nn.Module, torch.optim.Optimizer, list[float]]:
    """Schedule-Free as its README says: train() before steps, eval() before evaluation,
    BatchNorm statistics recomputed at x (reset, exact average over the pass, RNGs put back);
    without ``evaluate``, only at the end."""
    model = make_model(0, batchnorm=batchnorm)
    opt = SF_CLASSES[name](model.parameters(), lr=lr, warmup_steps=3)
    torch.manual_seed(0)
    loader = _loader(0)
    assert loader.generator is not None
    vx, vy = _val()
    val_losses = []
    model.train()
    for epoch in range(epochs):
        opt.train()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if not evaluate and epoch < epochs - 1:
            continue
        opt.eval()
        if batchnorm:
            rng, order = torch.get_rng_state(), loader.generator.get_state()
            bn = model[1]
            assert isinstance(bn, nn.BatchNorm1d)
            bn.reset_running_stats()
            bn.momentum = None
            with torch.no_grad():
                for x, _ in itertools.islice(loader, BN_BATCHES):
                    model(x)
            bn.momentum = 0.1
            torch.set_rng_state(rng)
            loader.generator.set_state(order)
        model.eval()
        with torch.no_grad():
            val_losses.append(float(nn.functional.cross_entropy(model(vx), vy)))
        model.train()
    return model, opt, val_losses


@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("name", ["schedulefree_adamw", "schedulefree_sgd"])
def test_fit_with_schedule_free_equals_the_hand_written_train_eval_loop(
    name: str, batchnorm: bool
) -> None:
    """Every epoch is evaluated on the averaged weights x (with BatchNorm statistics
    recomputed there), and the run goes on from y with the data order it would have had."""
    lr = DEFAULT_LRS[name] * 4
    model = make_model(0, batchnorm=batchnorm)
    opt = OPTIMIZERS[name](model.parameters(), lr=lr, warmup_steps=3)
    history = fit(model, opt, _loader(), nn.CrossEntropyLoss(), 2, val_loader=_val_loader(),
                  seed=0, progress=False, metrics=())  # fmt: skip

    ref, _, val_losses = _hand_schedule_free(name, 2, lr, batchnorm)
    _same_weights(model, ref)
    assert [e["val_loss"] for e in history.epochs] == pytest.approx(val_losses, rel=1e-6)
    assert opt.param_groups[0]["train_mode"] is False  # returned in eval mode: the model is x
    assert history.caveats == []


def test_schedule_free_evaluation_is_not_at_the_training_point_y() -> None:
    """Without the switch, validation would score y; fit scores x, which differs."""
    model = make_model(0)
    opt = OPTIMIZERS["schedulefree_adamw"](model.parameters(), lr=0.01)
    history = fit(model, opt, _loader(), nn.CrossEntropyLoss(), 1, val_loader=_val_loader(),
                  seed=0, progress=False, metrics=())  # fmt: skip
    vx, vy = _val()
    with torch.no_grad():
        at_x = float(nn.functional.cross_entropy(model(vx), vy))
        opt.train()
        at_y = float(nn.functional.cross_entropy(model(vx), vy))
    assert history.final["val_loss"] == pytest.approx(at_x, rel=1e-6)
    assert at_y != pytest.approx(at_x, rel=1e-6)


def test_schedule_free_without_val_loader_still_returns_the_average() -> None:
    model = make_model(0, batchnorm=True)
    opt = OPTIMIZERS["schedulefree_sgd"](model.parameters(), lr=0.5, warmup_steps=3)
    fit(model, opt, _loader(), nn.CrossEntropyLoss(), 2, seed=0, progress=False)
    ref, _, _ = _hand_schedule_free("schedulefree_sgd", 2, 0.5, batchnorm=True, evaluate=False)
    assert opt.param_groups[0]["train_mode"] is False
    _same_weights(model, ref)


def test_schedule_free_with_a_decaying_schedule_runs_with_a_caveat() -> None:
    model = make_model(0)
    opt = OPTIMIZERS["schedulefree_adamw"](model.parameters(), lr=0.01)
    history = fit(model, opt, _loader(), nn.CrossEntropyLoss(), 1, progress=False,
                  schedule=schedules.cosine(0.01, len(_loader())))  # fmt: skip
    assert len(history.caveats) == 1
    assert "Schedule-Free needs no schedule" in history.caveats[0]
    assert "cosine" in history.caveats[0]
    assert history.step_lr[0] > history.step_lr[-1]  # applied, as its docs allow
    model = make_model(0)
    opt = OPTIMIZERS["schedulefree_adamw"](model.parameters(), lr=0.01)
    history = fit(model, opt, _loader(), nn.CrossEntropyLoss(), 1, progress=False,
                  schedule="constant(lr=0.01)")  # fmt: skip
    assert history.caveats == []


# --- Task and Task.fit -------------------------------------------------------------------


@pytest.mark.parametrize("name", LR_FREE)
def test_task_fit_without_lr_runs_at_the_documented_default_and_says_so(name: str) -> None:
    history = tiny_task().fit(optimizer=name, epochs=1, progress=False)
    assert history.step_lr[0] == DEFAULT_LRS[name]
    assert history.caveats[0].startswith(f"lr not given: {name} ran at lr={DEFAULT_LRS[name]:g}")
    assert tiny_task(optimizer=name).lr == DEFAULT_LRS[name]


def test_task_fit_without_lr_for_sgd_is_still_refused() -> None:
    with pytest.raises(ValueError, match="lr is needed"):
        tiny_task().fit(optimizer="adamw", epochs=1, progress=False)


def test_task_fit_with_prodigy_equals_fit_with_prodigyopt() -> None:
    task = tiny_task()
    history = task.fit(1.0, optimizer="prodigy", epochs=1, seed=3, progress=False)
    model = task.make_model(3)
    opt = prodigyopt.Prodigy(model.parameters(), lr=1.0)
    ref = fit(model, opt, task.train_loader(3), task.criterion, 1, seed=3, progress=False,
              schedule="constant(lr=1.0)", val_loader=task.val_loader(),
              metrics=(task.metric,))  # fmt: skip
    assert history.step_loss == ref.step_loss
    assert history.epochs == ref.epochs


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "reason"), [
    ("prodigy", "multiplies Prodigy's own step-size estimate"),
    ("schedulefree_adamw", "interpolation point"),
    ("schedulefree_sgd", "interpolation point"),
])  # fmt: skip
def test_find_lr_refuses_lr_free_optimizers_with_the_reason(name: str, reason: str) -> None:
    model = make_model(0)
    opt = OPTIMIZERS[name](model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=reason):
        find_lr(model, opt, _loader(), nn.CrossEntropyLoss(), num_steps=10, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not opt.state  # refused before any step


def test_check_range_test_passes_torch_optimizers() -> None:
    params = [nn.Parameter(torch.zeros(1))]
    for name in ("sgd", "adam", "adamw", "nadam"):
        opt = OPTIMIZERS[name](params, lr=0.1)
        check_range_test(opt)
        assert not is_schedule_free(opt)
    assert is_schedule_free(OPTIMIZERS["schedulefree_sgd"](params, lr=0.1))


@pytest.mark.parametrize("name", LR_FREE)
def test_fit_many_refuses_them_naming_the_processes_executor(name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name} has none.*executor='processes'"):
        fit_many(make_model, _loader(), nn.CrossEntropyLoss(), 1, optimizer=name, lrs=[1.0],
                 progress=False)  # fmt: skip


def test_a_vectorized_sweep_refuses_them_before_any_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"executor='vectorized'.*executor='processes'"):
        sweep(tiny_task(), lrs=[0.01], epochs=1, optimizers=("adamw", "prodigy@default"),
              executor="vectorized", store=tmp_path / "s", progress=False,
              report=False)  # fmt: skip
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").glob("*/"))


# --- sweeps ------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "parsed"), [
    ("adamw", ("adamw", None)),
    ("schedulefree_adamw", ("schedulefree_adamw", None)),
    ("prodigy@default", ("prodigy", 1.0)),
    ("schedulefree_sgd@default", ("schedulefree_sgd", 1.0)),
    ("prodigy@0.5", ("prodigy", 0.5)),
    ("adamw@1e-3", ("adamw", 1e-3)),
])  # fmt: skip
def test_parse_optimizer_reads_names_and_pinned_lrs(entry: str, parsed: Any) -> None:
    assert parse_optimizer(entry) == parsed


@pytest.mark.parametrize(("entry", "message"), [
    ("prodigy", "prodigy@default"),
    ("sgd@default", "sgd@0.001"),
    ("adamw@fast", "finite number > 0"),
    ("adamw@-1", "finite number > 0"),
    ("adamw@nan", "finite number > 0"),
    ("lion@default", "unknown optimizer 'lion'"),
])  # fmt: skip
def test_parse_optimizer_refuses_with_the_fix(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_optimizer(entry)


def test_a_pinned_optimizer_runs_once_at_its_lr_beside_the_grid() -> None:
    spec = SweepSpec(task="digits-mlp", lrs=[1e-3, 1e-2, 1e-1], epochs=1, seeds=(0, 1),
                     optimizers=("adamw", "prodigy@default"))  # fmt: skip
    runs = spec.expand()
    pinned = [(c.optimizer, c.lr, c.seed) for c in runs if c.optimizer == "prodigy"]
    assert sorted(pinned) == [("prodigy", 1.0, 0), ("prodigy", 1.0, 1)]
    assert len([c for c in runs if c.optimizer == "adamw"]) == 6
    other = SweepSpec(task="digits-mlp", lrs=[1e-3, 1e-2, 1e-1], epochs=1, seeds=(0, 1),
                      optimizers=("adamw", "prodigy@0.5"))  # fmt: skip
    assert other.sweep_id != spec.sweep_id


def test_around_finder_uses_the_first_swept_optimizer() -> None:
    spec = SweepSpec(task="digits-mlp", lrs="around-finder", epochs=1,
                     optimizers=("prodigy@default", "adamw"))  # fmt: skip
    assert spec.finder_optimizer() == "adamw"
    with pytest.raises(ValueError, match=r"every one of .* is pinned"):
        SweepSpec(task="digits-mlp", lrs="around-finder", epochs=1,
                  optimizers=("prodigy@default",))  # fmt: skip
    with pytest.raises(ValueError, match="range test cannot measure"):
        SweepSpec(task="digits-mlp", lrs="around-finder", epochs=1,
                  optimizers=("schedulefree_adamw", "adamw"))  # fmt: skip


def test_a_sweep_of_adamw_against_prodigy_at_its_default_stores_and_reports_both(
    tmp_path: Path,
) -> None:
    result = sweep(tiny_task(), lrs=[1e-3, 1e-2], epochs=1, optimizers=("adamw", "prodigy@default"),
                   store=tmp_path / "s", progress=False)  # fmt: skip
    configs = sorted((r.config["optimizer"], r.config["lr"]) for r in result.runs)
    assert configs == [("adamw", 1e-3), ("adamw", 1e-2), ("prodigy", 1.0)]
    assert all(r.status == "done" for r in result.runs)
    assert result.report is not None
    html = result.report.read_text()
    assert "prodigy" in html
    assert "adamw" in html


# --- CLI ---------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_train_runs_prodigy_without_lr_and_prints_the_default(tmp_path: Path) -> None:
    args = ["train", "tests.test_lr_free:cli_tiny_task", "--optimizer", "prodigy", "--epochs",
            "1", "-o", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "prodigy, constant(lr=1.0)" in text
    assert "lr not given: prodigy ran at lr=1" in text


def test_cli_train_without_lr_for_sgd_names_the_fix(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "tests.test_lr_free:cli_tiny_task", "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--lr is needed for sgd" in " ".join(result.output.split())


def test_cli_find_refuses_prodigy_in_one_line(tmp_path: Path) -> None:
    args = ["find", "tests.test_lr_free:cli_tiny_task", "--optimizer", "prodigy", "-o",
            str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "cannot range-test Prodigy" in " ".join(result.output.split())


def test_cli_sweep_spec_takes_the_names(tmp_path: Path) -> None:
    spec = tmp_path / "lrfree.toml"
    spec.write_text(
        'task = "tests.test_lr_free:cli_tiny_task"\nepochs = 1\nlrs = [0.01]\n'
        'optimizers = ["schedulefree_adamw", "prodigy@default"]\n'
    )
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(tmp_path / "s"),
                                 "--no-report"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 ran" in result.output
