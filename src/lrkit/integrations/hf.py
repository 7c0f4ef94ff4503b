"""lrkit in the Hugging Face ``Trainer``: the range test, an lrkit schedule, per-layer groups.

- :func:`find_lr` runs the range test with what ``trainer.train()`` would use: its model,
  its optimizer (``trainer.create_optimizer()`` when it has none yet), its train dataloader
  and its ``compute_loss``; everything is restored after.
- :func:`use_schedule` installs an lrkit schedule as the Trainer's LR scheduler, on the
  Trainer's own optimizer and param groups; it is checkpointed and resumed with the Trainer's
  step count like the built-in ones.
- :func:`transformers_split` (defined in :mod:`lrkit._transformers`, re-exported) is the
  per-layer split (embeddings, each block, head) that :func:`lrkit.param_groups` uses for a
  ``transformers`` model, so that ``decay=`` reaches every layer.

transformers is never imported here: a model can only be a ``PreTrainedModel`` once the user
has imported it.

>>> from lrkit.integrations.hf import find_lr, use_schedule
>>> res = find_lr(trainer)  # the Trainer's model, optimizer, data and loss; all restored
>>> torch_sched = use_schedule(trainer, schedules.one_cycle(res.suggestion, 1000))
>>> trainer.lr_scheduler is torch_sched  # the Trainer steps it, checkpoints it, resumes it
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lrkit._transformers import transformers_split
from lrkit.finder import FinderResult
from lrkit.finder import find_lr as _find_lr
from lrkit.schedules import Schedule
from lrkit.torch_sched import ScheduleLR, to_torch

__all__ = ["find_lr", "transformers_split", "use_schedule"]


def _loss(out: Any) -> torch.Tensor:
    if isinstance(out, tuple):  # compute_loss(..., return_outputs=True) shape
        out = out[0]
    if isinstance(out, Mapping):
        out = out["loss"]
    return out  # type: ignore[no-any-return]


def find_lr(trainer: Any, **find_kwargs: Any) -> FinderResult:
    """The range test on a Hugging Face ``Trainer``: its model, optimizer, train dataloader
    and ``compute_loss``.

    The optimizer is the Trainer's (``trainer.create_optimizer()`` builds it from the
    ``TrainingArguments`` when there is none yet; it is dropped again after, so ``train()``
    builds its own as before). The model, the optimizer and the RNGs are restored bit for
    bit. ``find_kwargs`` go to :func:`lrkit.find_lr` (``num_steps``, ``end_lr``, ...); the
    ``Trainer``'s accelerator does the backward pass (bf16 autocast) unless it scales fp16
    losses, where lrkit's own ``amp`` path is used.
    """
    for name in ("model", "get_train_dataloader", "compute_loss", "create_optimizer"):
        if not hasattr(trainer, name):
            raise TypeError(
                f"trainer must be a transformers Trainer (no .{name} on {type(trainer).__name__})"
            )
    model = trainer.model
    created = trainer.optimizer is None
    optimizer = trainer.create_optimizer() if created else trainer.optimizer
    loader = trainer.get_train_dataloader()

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        return _loss(trainer.compute_loss(model, batch))

    kwargs: dict[str, Any] = {"step_fn": step, **find_kwargs}
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None and "accelerator" not in kwargs and "amp" not in kwargs:
        if getattr(accelerator, "scaler", None) is None:
            kwargs["accelerator"] = accelerator
        else:
            kwargs["amp"] = True
    try:
        return _find_lr(model, optimizer, loader, **kwargs)
    finally:
        if created:
            trainer.optimizer = None


def use_schedule(
    trainer: Any,
    schedule: Schedule | str | Mapping[str, Any],
    momentum: Schedule | str | bool | None = None,
) -> ScheduleLR:
    """Make ``schedule`` the Trainer's LR scheduler, on the Trainer's own optimizer.

    The optimizer (and its param groups: weight decay on/off, any per-group LRs, which keep
    their ratios) is the one the ``TrainingArguments`` ask for, built now by
    ``trainer.create_optimizer()`` if needed; ``train()`` then keeps both instead of building
    ``lr_scheduler_type``'s. The Trainer steps it once per optimizer step and saves and
    restores it with its checkpoints, so a resumed run continues at the same step. The
    schedule's step 0 is the first optimizer step; give it the Trainer's total steps.
    """
    if not hasattr(trainer, "create_optimizer"):
        raise TypeError(f"trainer must be a transformers Trainer (got {type(trainer).__name__})")
    optimizer = trainer.optimizer if trainer.optimizer is not None else trainer.create_optimizer()
    scheduler = to_torch(optimizer, schedule, momentum)
    trainer.lr_scheduler = scheduler
    return scheduler
