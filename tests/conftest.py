"""Shared fixtures: tiny learnable problems that run in milliseconds."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# The fixture generators are scripts run by hand (one needs fastai, which cannot be imported
# here), not test modules: --doctest-modules must not import them.
collect_ignore_glob = ["fixtures/*.py"]


def make_data(n: int = 256, features: int = 8, classes: int = 3, seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen)
    w = torch.randn(features, classes, generator=gen)
    y = (x @ w).argmax(dim=1)
    return TensorDataset(x, y)


def make_model(seed: int = 0, batchnorm: bool = False, features: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(features, 16)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Linear(16, 3)]
    return nn.Sequential(*layers)


@pytest.fixture
def data() -> TensorDataset:
    return make_data()


@pytest.fixture
def loader(data: TensorDataset) -> DataLoader:
    return DataLoader(data, batch_size=32, shuffle=True)
