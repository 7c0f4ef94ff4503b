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


_ELEMENTWISE = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCEWithLogitsLoss)


def describe(batch: Any) -> str:
    """A short description of a batch's structure: types, shapes, dtypes."""
    if isinstance(batch, torch.Tensor):
        return f"tensor {str(batch.dtype).removeprefix('torch.')} {list(batch.shape)}"
    if isinstance(batch, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in list(batch.items())[:6]) + "}"
    if isinstance(batch, (list, tuple)):
        return "(" + ", ".join(describe(v) for v in batch[:6]) + ")"
    return type(batch).__name__


def default_step(criterion: Callable[..., torch.Tensor]) -> StepFn:
    """The step of ``(inputs, targets)`` batches: ``criterion(model(inputs), targets)``.

    A batch the model or the loss cannot take fails with lrkit's message naming the shapes
    (not only torch's, from deep inside the forward); an element-wise loss (MSE, L1, Huber,
    BCE-with-logits) given outputs and targets of different shapes is refused instead of
    silently broadcasting them.
    """

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
            raise ValueError(
                "criterion mode expects (inputs, targets) batches; for dicts, several inputs "
                "or models that return their own loss, pass step_fn=lambda model, batch: loss"
                f" (got {describe(batch)})"
            )
        inputs, targets = batch
        try:
            outputs = model(inputs)
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            raise ValueError(
                f"the model failed on a batch of inputs {describe(inputs)}: {exc}. Check that "
                "the loader's batches are (inputs, targets) with inputs of the shape the model "
                "expects"
            ) from exc
        if (
            isinstance(criterion, _ELEMENTWISE)
            and isinstance(outputs, torch.Tensor)
            and isinstance(targets, torch.Tensor)
            and outputs.shape != targets.shape
        ):
            raise ValueError(
                f"{type(criterion).__name__} compares outputs {describe(outputs)} with targets "
                f"{describe(targets)} element by element; shapes that differ would broadcast "
                "silently. Reshape the targets (e.g. y.view(-1, 1)) or the outputs"
            )
        try:
            return criterion(outputs, targets)
        except (RuntimeError, ValueError, IndexError) as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            raise ValueError(
                f"the loss failed on outputs {describe(outputs)} and targets "
                f"{describe(targets)}: {exc}. Check the targets' shape and dtype against "
                "what the criterion expects"
            ) from exc

    return step


def check_trainable(loss: torch.Tensor) -> None:
    """Refuse a loss that no gradient can flow back from, with what to do."""
    if not loss.requires_grad:
        raise ValueError(
            "the loss does not require grad: it was detached (.detach(), .item(), computed "
            "under torch.no_grad()) or nothing it depends on is trainable; return the loss "
            "tensor built from the model's output"
        )


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
