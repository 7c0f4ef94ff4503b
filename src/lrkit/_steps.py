"""Helpers shared by the loops that run training steps (the finder and ``fit``)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

StepFn = Callable[[nn.Module, Any], torch.Tensor]
"""``step_fn(model, batch) -> scalar loss tensor``, for batches that are not ``(x, y)``."""


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (nested in tuples, lists, dicts) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: to_device(v, device) for k, v in batch.items()})  # type: ignore[call-arg]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def default_step(criterion: Callable[..., torch.Tensor]) -> StepFn:
    """The step of ``(inputs, targets)`` batches: ``criterion(model(inputs), targets)``."""

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
            raise ValueError(
                "criterion mode expects (inputs, targets) batches; for dicts, several inputs "
                "or models that return their own loss, pass step_fn=lambda model, batch: loss"
            )
        inputs, targets = batch
        return criterion(model(inputs), targets)

    return step


def loss_value(loss: Any) -> torch.Tensor:
    """``loss`` as a 0-d tensor, or a clear error when it is not a single number."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(
            f"the loss must be a scalar tensor (got {type(loss).__name__}"
            f"{'' if not isinstance(loss, torch.Tensor) else f' of shape {tuple(loss.shape)}'}); "
            "reduce it with .mean() or return the loss from step_fn"
        )
    return loss.reshape(())


def loader_length(loader: object) -> int | None:
    """``len(loader)``, or ``None`` when it has none (a DataLoader over an IterableDataset
    without ``__len__`` has the method but raises ``TypeError``)."""
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def seed_all(seed: int) -> None:
    """Seed torch, numpy's global RNG and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global RNG is what user code reads
    random.seed(seed)
