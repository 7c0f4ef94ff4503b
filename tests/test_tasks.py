"""Built-in tasks: shapes, dtypes, determinism, user tasks by import path."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lrkit.tasks import Task, get_task


def test_digits_task_shapes_and_dtypes() -> None:
    task = get_task("digits-mlp")
    x, y = task.train[0]
    assert x.shape == (64,) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert len(task.train) + len(task.val) == 1797
    assert task.make_model(0)(x[None]).shape == (1, 10)


def test_make_model_is_deterministic_per_seed() -> None:
    task = get_task("digits-mlp")
    a, b, c = task.make_model(1), task.make_model(1), task.make_model(2)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb)
    assert not torch.equal(pa, pc)


def test_user_task_by_import_path() -> None:
    assert isinstance(get_task("lrkit.tasks.digits:digits_mlp"), Task)
    with pytest.raises(ValueError, match="cannot import task"):
        get_task("nowhere.module:make")


def test_mnist_task_is_real_digits() -> None:
    task = get_task("mnist-lenet")
    x, _ = task.train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert len(task.train) == 4000 and len(task.val) == 1000
    labels = torch.stack([task.train[i][1] for i in range(len(task.train))])
    assert set(labels.tolist()) == set(range(10))
    assert task.make_model(0)(x[None]).shape == (1, 10)


def test_folds_are_disjoint_cover_the_data_and_are_stratified() -> None:
    import numpy as np

    from lrkit.tasks import targets_of

    task = get_task("digits-mlp")
    n = len(task.train) + len(task.val)
    seen: list[int] = []
    for k in range(5):
        f = task.fold(k, 5, seed=0)
        assert set(f.train.indices).isdisjoint(f.val.indices)
        assert len(f.train) + len(f.val) == n
        seen += list(f.val.indices)
        counts = np.bincount(targets_of(f.val), minlength=10)
        assert counts.min() >= 0.8 * counts.max()  # stratified: classes stay balanced
    assert sorted(seen) == list(range(n))
    assert task.fold(0, 5, seed=0).val.indices == task.fold(0, 5, seed=0).val.indices
    assert task.fold(0, 5, seed=0).val.indices != task.fold(0, 5, seed=1).val.indices


def test_fold_arguments_are_checked() -> None:
    task = get_task("digits-mlp")
    with pytest.raises(ValueError, match=r"fold must be in 0\.\.4"):
        task.fold(5, 5)
    with pytest.raises(ValueError, match="n_folds"):
        task.fold(0, 1)
    assert "fold 2/3" in get_task("digits-mlp", fold=2, n_folds=3).name


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_standard_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = {
        "train": rng.integers(0, 256, (20, 28, 28)),
        "t10k": rng.integers(0, 256, (8, 28, 28)),
    }
    labels = {"train": rng.integers(0, 10, 20), "t10k": rng.integers(0, 10, 8)}
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images[split])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels[split])
    task = get_task("fashion-mnist-lenet", data_dir=tmp_path)
    assert len(task.train) == 20 and len(task.val) == 8
    x, y = task.train[3]
    assert x.shape == (1, 28, 28)
    assert torch.allclose(x[0], torch.tensor(images["train"][3] / 255.0, dtype=torch.float32))
    assert int(y) == labels["train"][3]


def test_fashion_mnist_missing_files_are_listed(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    with pytest.raises(FileNotFoundError) as info:
        get_task("fashion-mnist-lenet", data_dir=tmp_path)
    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message and "t10k-images-idx3-ubyte.gz" in message
    with pytest.raises(ValueError, match="--data-dir"):
        get_task("fashion-mnist-lenet")


def test_corrupt_idx_file_is_refused(tmp_path: Path) -> None:
    from lrkit.tasks.images import read_idx

    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(ValueError, match="header says"):
        read_idx(path)


def test_task_fit_is_the_wiring_written_out() -> None:
    import torch

    from lrkit.schedules import for_run
    from lrkit.train import fit

    task = get_task("digits-mlp")
    got = task.fit(0.05, schedule="one_cycle", optimizer="adam", seed=3, epochs=1,
                   progress=False)  # fmt: skip
    loader = task.train_loader(3)
    sched = for_run("one_cycle", 0.05, len(loader))
    model = task.make_model(3)
    opt = task.make_optimizer(model, lr=sched(0), optimizer="adam")
    assert isinstance(opt, torch.optim.Adam)
    want = fit(model, opt, loader, task.criterion, 1, schedule=sched, val_loader=task.val_loader(),
               metrics=(task.metric,), seed=3, progress=False)  # fmt: skip
    assert got.step_lr == want.step_lr and got.step_loss == want.step_loss
    assert got.epochs == want.epochs


def test_task_fit_takes_a_schedule_object_and_the_tasks_epochs() -> None:
    from lrkit.schedules import constant

    task = get_task("digits-mlp")
    task.epochs = 2
    history = task.fit(schedule=constant(0.02), progress=False)
    assert len(history.epochs) == 2
    assert set(history.step_lr) == {0.02}
    assert len(history.step_lr) == 2 * task.steps_per_epoch


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "cosine"}, "lr is needed to fill schedule 'cosine'"),
        ({"lr": 0.1, "schedule": "constant(lr=0.1)", "epochs": 0}, "epochs must be"),
    ],
)
def test_task_fit_rejects_bad_arguments_before_training(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        get_task("digits-mlp").fit(progress=False, **kwargs)  # type: ignore[arg-type]


def test_task_fit_rejects_an_lr_beside_a_schedule_object() -> None:
    from lrkit.schedules import constant

    with pytest.raises(ValueError, match="not both"):
        get_task("digits-mlp").fit(0.1, schedule=constant(0.1), progress=False)
