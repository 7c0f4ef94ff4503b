"""The fine-tuning recipe: freeze → find → train the head → unfreeze → find again → train all.

As fastai's ``fine_tune`` does it, but on any ``nn.Module`` and with the range test run again
before each stage instead of a fixed guess (Howard & Ruder, "ULMFiT", 2018).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrkit._steps import StepFn
from lrkit.finder import FinderResult, find_lr
from lrkit.groups import GroupsArg, freeze, layer_groups, param_groups, unfreeze
from lrkit.optimizers import OPTIMIZERS
from lrkit.schedules import one_cycle
from lrkit.train import BatchMetric, History, fit

__all__ = ["FineTuneResult", "fine_tune", "load_pretrained"]


@dataclass
class FineTuneResult:
    """Both stages: the finder results, the LRs chosen and the training histories.

    ``caveats`` says when a stage's suggestion looked implausible next to the stage before
    (each also raised as a ``UserWarning``); empty when none did.
    """

    head_finder: FinderResult | None
    head_lr: float
    head_history: History
    full_finder: FinderResult | None
    full_lrs: list[float]
    full_history: History
    caveats: list[str] = field(default_factory=list)


IMPLAUSIBLY_LOWER = 100.0
"""An unfrozen-phase suggestion this many times below the head's LR is flagged."""
IMPLAUSIBLY_HIGHER = 10.0
"""An unfrozen-phase suggestion this many times above the head's LR is flagged."""


def phase_caveat(head_lr: float, full_lr: float) -> str | None:
    """Why the unfrozen phase's suggested LR is implausible next to the head's, or ``None``.

    Unfreezing adds the pretrained body at ``lr / lr_mult`` and below: the head's LR should
    stay within a decade or two. A suggestion 100x lower usually means the range test read a
    curve that barely fell (the head is already trained) and picked its noise; 10x higher
    would push the body's pretrained weights harder than the fresh head was.
    """
    if full_lr < head_lr / IMPLAUSIBLY_LOWER:
        ratio, side = head_lr / full_lr, "below"
    elif full_lr > head_lr * IMPLAUSIBLY_HIGHER:
        ratio, side = full_lr / head_lr, "above"
    else:
        return None
    return (
        f"the unfrozen-phase range test suggested {full_lr:.3g}, {ratio:.0f}x {side} the head "
        f"phase's LR {head_lr:.3g}: implausible (a flat curve after the head was trained "
        f"reads as noise). Check full_finder.plot(), or pass base_lr (e.g. {head_lr / 10:.3g},"
        " a tenth of the head's)"
    )


def load_pretrained(model: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Copy the checkpoint's tensors whose names and shapes match into ``model``.

    ``path`` holds a state dict, or a dict with one under ``"state_dict"`` or ``"model"``
    (Lightning and common training scripts save those). Returns ``(loaded, skipped)`` names:
    a head of another shape is skipped and keeps its fresh weights, ready for fine-tuning.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict (got {type(state).__name__})")
    own = model.state_dict()
    loaded = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    skipped = [k for k in own if k not in loaded]
    if not loaded:
        raise ValueError(f"no tensor of {path} matches the model's names and shapes")
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return loaded, skipped


def _suggested(result: FinderResult, stage: str) -> float:
    lr = result.suggestion_for("one_cycle") or result.suggestions.get("minimum")
    if lr is None:
        raise ValueError(
            f"the range test for the {stage} gave no suggestion ({result.notes.get('auto')}); "
            "pass base_lr"
        )
    return lr


def fine_tune(
    model: nn.Module,
    train_loader: Iterable[Any],
    criterion: Callable[..., torch.Tensor] | None = None,
    *,
    epochs: int,
    freeze_epochs: int = 1,
    base_lr: float | None = None,
    lr_mult: float = 100.0,
    val_loader: Iterable[Any] | None = None,
    groups: GroupsArg = None,
    optimizer: str = "adamw",
    optimizer_kwargs: dict[str, Any] | None = None,
    metrics: tuple[str, ...] | None = None,
    step_fn: StepFn | None = None,
    metric: BatchMetric | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> FineTuneResult:
    """Fine-tune a pretrained ``model`` whose last layer group is the (new) head.

    1. Freeze every layer group but the last (normalisation layers stay trainable).
    2. Range test on the head (skipped when ``base_lr`` is given) → ``lr``.
    3. ``freeze_epochs`` of one-cycle at ``lr`` on the head.
    4. Unfreeze; range test again with discriminative groups ``slice(lr / lr_mult, lr)``,
       which keeps their ratios → ``lr2`` for the last group (``base_lr`` if given).
    5. ``epochs`` of one-cycle on everything, groups from ``lr2 / lr_mult`` to ``lr2``.

    The loss is ``criterion(model(x), y)`` or ``step_fn(model, batch)`` (models that return
    their own loss, such as Hugging Face ones: ``step_fn=lambda m, b: m(**b).loss``).
    ``metrics`` (default ``("accuracy",)`` with a criterion, none with a ``step_fn``) and
    ``metric(model, batch)`` are computed on ``val_loader`` as :func:`lrkit.fit` does. A
    transformers model is split per layer (embeddings, each block, head) by default.
    Step 4's suggestion is checked against step 2's LR: more than 100x lower or 10x higher
    is implausible, and says so (with the numbers) in ``result.caveats`` and a
    ``UserWarning``; the run still uses it, as asked.
    """
    if (criterion is None) == (step_fn is None):
        raise ValueError(
            "pass criterion (loss = criterion(model(x), y)) or step_fn(model, batch) -> loss, "
            "one of the two"
        )
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {optimizer!r})")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1 (got {epochs!r})")
    if isinstance(freeze_epochs, bool) or not isinstance(freeze_epochs, int) or freeze_epochs < 0:
        raise ValueError(f"freeze_epochs must be an integer >= 0 (got {freeze_epochs!r})")
    if not lr_mult >= 1:
        raise ValueError(f"lr_mult must be >= 1 (got {lr_mult!r}); 100 is fastai's default")
    if base_lr is not None and not base_lr > 0:
        raise ValueError(f"base_lr must be > 0 (got {base_lr!r})")
    if len(layer_groups(model, groups)) < 2:
        raise ValueError("fine_tune needs at least two layer groups (a body and a head)")
    kwargs = optimizer_kwargs or {}
    fit_kwargs: dict[str, Any] = {"metrics": metrics, "step_fn": step_fn, "metric": metric}
    steps_per_epoch = len(train_loader)  # type: ignore[arg-type]

    def make(lr: float | slice) -> torch.optim.Optimizer:
        return OPTIMIZERS[optimizer](param_groups(model, lr, groups=groups), **kwargs)

    freeze(model, groups=groups)
    head_finder = None
    lr = base_lr
    if lr is None:
        head_finder = find_lr(model, make(1e-3), train_loader, criterion, step_fn=step_fn,
                              seed=seed, progress=progress)  # fmt: skip
        lr = _suggested(head_finder, "head")
    if freeze_epochs:
        head_history = fit(
            model, make(lr), train_loader, criterion, freeze_epochs,
            schedule=one_cycle(max_lr=lr, total_steps=freeze_epochs * steps_per_epoch),
            val_loader=val_loader, seed=seed, progress=progress, **fit_kwargs,
        )  # fmt: skip
    else:
        head_history = History()

    unfreeze(model)
    caveats: list[str] = []
    full_finder = None
    lr2 = base_lr
    if lr2 is None:
        full_finder = find_lr(model, make(slice(lr / lr_mult, lr)), train_loader, criterion,
                              step_fn=step_fn, seed=seed, progress=progress)  # fmt: skip
        lr2 = _suggested(full_finder, "whole model")
        caveat = phase_caveat(lr, lr2)
        if caveat is not None:
            caveats.append(caveat)
            warnings.warn(caveat, UserWarning, stacklevel=2)
    opt = make(slice(lr2 / lr_mult, lr2))
    full_lrs = [float(g["lr"]) for g in opt.param_groups]
    full_history = fit(
        model, opt, train_loader, criterion, epochs,
        schedule=one_cycle(max_lr=lr2, total_steps=epochs * steps_per_epoch),
        val_loader=val_loader, seed=seed, progress=progress, **fit_kwargs,
    )  # fmt: skip
    return FineTuneResult(
        head_finder, lr, head_history, full_finder, full_lrs, full_history, caveats
    )
