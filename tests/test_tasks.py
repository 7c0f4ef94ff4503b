"""Built-in tasks: shapes, dtypes, determinism, user tasks by import path."""

from __future__ import annotations

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
