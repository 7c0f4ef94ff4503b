"""The ``lrkit`` command, run in-process through typer's test runner."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import make_data, make_model
from torch import nn
from typer.testing import CliRunner

from lrkit.cli import app
from lrkit.tasks import Task

runner = CliRunner()


def tiny_task() -> Task:
    """128 samples in batches of 32: a 40-step range test goes through them 10 times."""
    return Task(
        name="tiny", make_model=lambda seed: make_model(), train=make_data(128),
        val=make_data(64, seed=1), criterion=nn.CrossEntropyLoss(), batch_size=32,
    )  # fmt: skip


def test_find_prints_suggestions_and_writes_plot_and_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["find", "digits-mlp", "--steps", "30", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "suggested peak LR by schedule: constant" in result.output
    data = json.loads((tmp_path / "finder.json").read_text())
    # one suggestion everywhere: the table's suggestion row is res.suggestion (auto's LR
    # times the constant schedule's factor), and auto's raw LR is a separate, labelled row
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in result.output.splitlines() if line.count("│") >= 3}  # fmt: skip
    assert rows["suggestion (constant)"] == f"{data['suggestion']:.3g}"
    assert rows["rule auto (raw) *"] == f"{data['suggestions']['auto']:.3g}"
    assert len(data["curves"][0]["lrs"]) <= 30
    assert (tmp_path / "finder.png").stat().st_size > 10_000


def test_find_on_tiny_data_prints_the_caveat(tmp_path: Path) -> None:
    args = ["find", "tests.test_cli:tiny_task", "--steps", "40", "-o", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "caveat:" in result.output
    assert "10.0 times" in " ".join(result.output.split())
    assert json.loads((tmp_path / "finder.json").read_text())["data_passes"] == 10.0


def test_unknown_task_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["find", "no-such-task", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown task 'no-such-task'" in result.output
    assert "digits-mlp" in result.output
    assert "Traceback" not in result.output


def test_bad_argument_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["find", "digits-mlp", "--steps", "3", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "num_steps" in result.output


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "find", "no-such-task", "-o", str(tmp_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError)


def test_schedule_plots_and_prints_values(tmp_path: Path) -> None:
    out = tmp_path / "s.png"
    result = runner.invoke(
        app,
        ["schedule", "one_cycle(max_lr=0.1, total_steps=100)",
         "cosine(max_lr=0.05, total_steps=100)", "--steps", "100", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    assert "0.004" in result.output  # one_cycle starts at max_lr / 25
    assert "cosine(max_lr=0.05, total_steps=100)" in result.output


def test_schedule_bad_spec_is_one_line_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schedule", "cosin(lr=1)", "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "unknown schedule 'cosin'" in result.output


def test_train_with_a_bare_schedule_name(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["train", "digits-mlp", "--lr", "0.05", "--schedule", "one_cycle", "--epochs", "2",
         "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["epochs"]) == 2
    assert max(history["step_lr"]) == pytest.approx(0.05, rel=0.01)
    assert history["step_lr"][0] == pytest.approx(0.05 / 25)
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_train_on_a_fold_with_another_optimizer(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["train", "digits-mlp", "--lr", "0.003", "--optimizer", "adam", "--epochs", "1",
         "--fold", "1", "--n-folds", "3", "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fold 1/3" in result.output


def test_find_missing_data_dir_is_one_line_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["find", "fashion-mnist-lenet", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "train-images-idx3-ubyte.gz" in result.output
    assert "Traceback" not in result.output


def test_train_bad_schedule_and_optimizer(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "digits-mlp", "--lr", "0.1", "--schedule", "cosin"])
    assert result.exit_code == 2 and "unknown schedule 'cosin'" in result.output
    result = runner.invoke(app, ["train", "digits-mlp", "--lr", "0.1", "--optimizer", "lion"])
    assert result.exit_code == 2 and "optimizer must be one of" in result.output


def test_sweep_help_lists_every_executor() -> None:
    from lrkit.sweeps.executors import EXECUTORS

    result = runner.invoke(app, ["sweep", "--help"])
    assert result.exit_code == 0
    for name in EXECUTORS:
        assert f"{name}:" in result.output, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["find", "nope"], "unknown task 'nope'"),
        (["train", "nope", "--lr", "0.1"], "unknown task 'nope'"),
        (["schedule", "cosin(lr=1)"], "cosin"),
        (["demo", "--task", "nope"], "unknown task 'nope'"),
        (["finetune", "digits-mlp", "--pretrained", "missing.pt"], "no checkpoint"),
        (["sweep", "missing.toml"], "no sweep spec"),
        (["report", "missing"], "no lrkit.db"),
        (["runs", "ls", "missing"], "no lrkit.db"),
        (["runs", "best", "missing"], "no lrkit.db"),
    ],
)
def test_user_errors_of_every_command_are_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert result.output.startswith("error: ") and result.output.count("error:") == 1


def test_debug_shows_the_exception_instead(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "find", "nope"])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)


def test_every_command_has_help() -> None:
    for command in ([], ["find"], ["train"], ["schedule"], ["demo"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_finetune_on_tiny_data_prints_each_finders_caveat(tmp_path: Path) -> None:
    import torch

    ckpt = tmp_path / "pre.pt"
    torch.save(make_model(3).state_dict(), ckpt)
    result = runner.invoke(
        app,
        ["finetune", "tests.test_cli:tiny_task", "--pretrained", str(ckpt), "--epochs", "2",
         "--freeze-epochs", "1", "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "head finder caveat:" in text and "all finder caveat:" in text
    assert "went through the training data" in text


def test_finetune_from_a_checkpoint_with_a_new_head(tmp_path: Path) -> None:
    import torch
    from torch import nn

    from lrkit.tasks import get_task

    pretrained = get_task("digits-mlp").make_model(7)
    pretrained[4] = nn.Linear(128, 5)  # another task's head: a different shape
    ckpt = tmp_path / "pre.pt"
    torch.save({"state_dict": pretrained.state_dict()}, ckpt)
    result = runner.invoke(
        app,
        ["finetune", "digits-mlp", "--pretrained", str(ckpt), "--epochs", "1",
         "--freeze-epochs", "1", "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "loaded 4 tensors" in result.output and "4.weight" in result.output
    assert "all epoch 1" in result.output
    assert (tmp_path / "finetune_history.json").is_file()
    result = runner.invoke(app, ["finetune", "digits-mlp", "--pretrained", str(tmp_path / "x")])
    assert result.exit_code == 2 and "no checkpoint" in result.output


# ---------------------------------------------------------------- issue 16, item 8


def _mini_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "mini.toml"
    spec.write_text('task = "digits-mlp"\nepochs = 1\nlrs = [0.1]\n')
    return spec


def _one_line_error(result: Any, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, (needle, result.output)


def test_a_store_under_a_file_is_one_line_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    store = tmp_path / "afile" / "store"
    result = runner.invoke(app, ["sweep", str(_mini_spec(tmp_path)), "--store", str(store)])
    _one_line_error(result, str(tmp_path / "afile"), "is a file", "--store")


def test_an_unwritable_store_is_one_line_naming_the_path(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    store = locked / "store"
    if os.access(locked, os.W_OK):  # root writes anywhere: use a place nobody can write
        store = Path("/sys/lrkit-store-test")
        if not Path("/sys").is_dir():
            pytest.skip("no unwritable directory to test with")
    result = runner.invoke(app, ["sweep", str(_mini_spec(tmp_path)), "--store", str(store)])
    _one_line_error(result, str(store), "--store")


def test_a_corrupt_store_is_one_line_naming_the_file(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "lrkit.db").write_bytes(b"this is not sqlite" * 100)
    result = runner.invoke(app, ["sweep", str(_mini_spec(tmp_path)), "--store", str(store)])
    _one_line_error(result, str(store / "lrkit.db"), "not an lrkit store")
    result = runner.invoke(app, ["runs", "ls", str(store)])
    _one_line_error(result, str(store / "lrkit.db"), "not an lrkit store")


def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    typo = str(tmp_path / "typo")
    for args in (["runs", "show", "abc", "--store", typo], ["report", typo],
                 ["runs", "ls", typo]):  # fmt: skip
        result = runner.invoke(app, args)
        _one_line_error(result, "no lrkit.db")
        assert not (tmp_path / "typo").exists(), args


def test_finetune_with_a_pickled_module_or_a_non_checkpoint_says_what_to_save(
    tmp_path: Path,
) -> None:
    import torch

    whole = tmp_path / "whole.pt"
    torch.save(nn.Linear(2, 2), whole)
    result = runner.invoke(app, ["finetune", "digits-mlp", "--pretrained", str(whole)])
    _one_line_error(result, str(whole), "not a state dict", "model.state_dict()")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    result = runner.invoke(app, ["finetune", "digits-mlp", "--pretrained", str(text)])
    _one_line_error(result, str(text), "not a PyTorch checkpoint", "model.state_dict()")


def test_schedule_to_a_non_image_file_says_which_files_it_writes(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    result = runner.invoke(app, ["schedule", "cosine(max_lr=0.1, total_steps=10)", "-o", str(out)])
    _one_line_error(result, "x.txt", ".png")
    assert not out.exists()


def test_seeds_as_a_number_in_toml_says_what_it_expects(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('task = "digits-mlp"\nepochs = 1\nlrs = [0.1]\nseeds = 3\n')
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(tmp_path / "s")])
    _one_line_error(result, "seeds must be a non-empty list (got 3)", "seeds = [0, 1, 2]")
