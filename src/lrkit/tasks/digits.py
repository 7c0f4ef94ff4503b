"""scikit-learn's 8×8 handwritten digits (1,797 images, shipped with scikit-learn)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lrkit.tasks._task import Task
from lrkit.tasks.models import build


def _require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the digits task needs scikit-learn: pip install 'lrkit[tasks]'") from exc


def load_digits_tensors(
    seed: int = 0, val_fraction: float = 0.2
) -> tuple[TensorDataset, TensorDataset]:
    """Digits as float32 images in [0, 1] (flattened) and int64 labels, split stratified."""
    _require_sklearn()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=val_fraction, random_state=seed, stratify=y
    )
    return (
        TensorDataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr)),
        TensorDataset(torch.from_numpy(x_va), torch.from_numpy(y_va)),
    )


class DigitsMLP(nn.Sequential):
    """A two-hidden-layer MLP for 64 inputs and 10 classes."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 10),
        )  # fmt: skip


def make_mlp(seed: int) -> nn.Module:
    """The digits MLP, initialised from ``seed``."""
    return build(seed, DigitsMLP)


def digits_mlp() -> Task:
    train, val = load_digits_tensors()
    return Task(
        name="digits-mlp",
        make_model=make_mlp,
        train=train,
        val=val,
        criterion=nn.CrossEntropyLoss(),
        optimizer="sgd",
        optimizer_kwargs={"momentum": 0.9},
        lr=0.05,
        batch_size=32,
        epochs=10,
    )
