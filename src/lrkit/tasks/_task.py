"""The :class:`Task`: everything needed to train one model on one dataset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


@dataclass
class Task:
    """A model factory, train/val datasets, a loss, a metric and training defaults.

    ``make_model(seed)`` must build the same initial weights for the same seed.
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

    def make_optimizer(self, model: nn.Module, lr: float | None = None) -> torch.optim.Optimizer:
        """The task's default optimizer over ``model``'s parameters."""
        cls = {
            "sgd": torch.optim.SGD,
            "adam": torch.optim.Adam,
            "adamw": torch.optim.AdamW,
            "nadam": torch.optim.NAdam,
        }[self.optimizer]
        opt: torch.optim.Optimizer = cls(
            model.parameters(), lr=self.lr if lr is None else lr, **self.optimizer_kwargs
        )
        return opt

    def train_loader(self, seed: int = 0, batch_size: int | None = None) -> DataLoader[Any]:
        """Shuffled training batches; the order depends only on ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            self.train, batch_size=batch_size or self.batch_size, shuffle=True, generator=gen
        )

    def val_loader(self, batch_size: int = 512) -> DataLoader[Any]:
        return DataLoader(self.val, batch_size=batch_size, shuffle=False)
