"""The :class:`Task`: everything needed to train one model on one dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from lrkit.optimizers import OPTIMIZERS as OPTIMIZERS  # the one table; re-exported


def targets_of(dataset: Dataset[Any]) -> np.ndarray:
    """The targets of a dataset of ``(x, y)`` pairs (read directly from a TensorDataset)."""
    if isinstance(dataset, TensorDataset):
        return np.asarray(dataset.tensors[1].numpy())
    if isinstance(dataset, Subset):
        picked: np.ndarray = targets_of(dataset.dataset)[np.asarray(dataset.indices)]
        return picked
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([targets_of(d) for d in dataset.datasets])
    return np.asarray([np.asarray(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]


def num_samples(dataset: Dataset[Any]) -> int:
    """``len(dataset)``; every dataset lrkit builds is sized."""
    return len(dataset)  # type: ignore[arg-type]


@dataclass
class Task:
    """A model factory, train/val datasets, a loss, a metric and training defaults.

    ``make_model(seed)`` must build the same initial weights for the same seed. ``metric``
    is a name from :data:`lrkit.train.METRICS`; ``"accuracy"`` marks a classification task
    (cross-validation folds are then stratified).
    """

    name: str
    make_model: Callable[[int], nn.Module]
    train: Dataset[Any]
    val: Dataset[Any]
    criterion: Callable[..., torch.Tensor]
    metric: str = "accuracy"
    optimizer: str = "sgd"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = 0.01
    batch_size: int = 64
    epochs: int = 5

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})"
            )

    def make_optimizer(
        self, params: Any, lr: float | None = None, optimizer: str | None = None
    ) -> torch.optim.Optimizer:
        """The task's optimizer (or ``optimizer`` by name) over a model or parameters."""
        name = optimizer or self.optimizer
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {name!r})")
        if isinstance(params, nn.Module):
            params = params.parameters()
        kwargs = self.optimizer_kwargs if name == self.optimizer else {}
        return OPTIMIZERS[name](params, lr=self.lr if lr is None else lr, **kwargs)

    def train_loader(self, seed: int = 0, batch_size: int | None = None) -> DataLoader[Any]:
        """Shuffled training batches; the order depends only on ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            self.train, batch_size=batch_size or self.batch_size, shuffle=True, generator=gen
        )

    def val_loader(self, batch_size: int = 500) -> DataLoader[Any]:
        return DataLoader(self.val, batch_size=batch_size, shuffle=False)

    def fold(self, fold: int, n_folds: int = 5, seed: int = 0) -> Task:
        """This task with train+val pooled and split into ``n_folds``; fold ``fold`` validates.

        scikit-learn's StratifiedKFold for classification (KFold otherwise), shuffled with
        ``seed``: the folds are disjoint and together cover every sample once.
        """
        if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
            raise ValueError(f"n_folds must be an integer >= 2 (got {n_folds!r})")
        if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < n_folds:
            raise ValueError(f"fold must be in 0..{n_folds - 1} (got {fold!r})")
        from sklearn.model_selection import KFold, StratifiedKFold

        pooled: Dataset[Any] = ConcatDataset([self.train, self.val])
        targets = targets_of(pooled)
        splitter = (
            StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            if self.metric == "accuracy"
            else KFold(n_splits=n_folds, shuffle=True, random_state=seed)
        )
        train_idx, val_idx = list(splitter.split(np.zeros(len(targets)), targets))[fold]
        return dataclasses.replace(
            self,
            name=f"{self.name}[fold {fold}/{n_folds}]",
            train=Subset(pooled, train_idx.tolist()),
            val=Subset(pooled, val_idx.tolist()),
        )
