"""Small reference models used by the built-in tasks and the benchmarks."""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) for 1×28×28 images: two conv blocks and three dense layers.

    Max-pooling and ReLU, as in the usual modern rendition (and Lightning's Fashion-MNIST
    example) rather than the original subsampling and tanh.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def build(seed: int, factory: type[nn.Module], *args: object) -> nn.Module:
    """``factory(*args)`` with weights drawn from ``seed``, leaving the global RNG as it was."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return factory(*args)
    finally:
        torch.random.set_rng_state(state)
