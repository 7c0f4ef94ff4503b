"""The plain range test: one run on the user's own model and optimizer, step by step."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from lrkit._steps import StepFn, check_trainable, loss_value, to_device
from lrkit.finder.result import Curve
from lrkit.finder.tracker import CurveTracker

__all__ = ["cycle", "run_serial"]

Autocast = Callable[[], contextlib.AbstractContextManager[Any]]


def cycle(loader: Iterable[Any], name: str) -> Iterator[Any]:
    """Iterate ``loader`` forever, starting a new epoch (and a new shuffle) when it ends."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError(f"{name} yielded no batches; give it at least one batch")


def _set_lrs(optimizer: torch.optim.Optimizer, lr: float, ratios: Sequence[float | None]) -> None:
    for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
        if ratio is None:  # find_lr(group=i): the other groups keep their LRs
            continue
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr * ratio)
        else:
            group["lr"] = lr * ratio


def run_serial(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[Any],
    step: StepFn,
    lrs: Sequence[float],
    ratios: Sequence[float | None],
    *,
    smooth: float,
    diverge_threshold: float,
    accumulation_steps: int,
    val_set: list[Any] | None,
    amp: bool,
    device: torch.device,
    bar: Any,
    accelerator: Any = None,
) -> Curve:
    """One range test: set the LR, average ``accumulation_steps`` micro-batch losses, step.

    With an ``accelerate.Accelerator``, backward goes through ``accelerator.backward`` (its
    GradScaler in fp16) and a step its scaler skipped is retried at the same LR, as here.
    """
    tracker = CurveTracker(smooth, diverge_threshold, with_val=val_set is not None)
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
    autocast: Autocast = (
        (lambda: torch.autocast(device_type=device.type)) if amp else contextlib.nullcontext
    )
    if accelerator is not None:
        autocast = accelerator.autocast
    # accelerator.backward divides by its own gradient_accumulation_steps; accumulation_steps
    # here is the finder's, so that division is undone
    undo = float(getattr(accelerator, "gradient_accumulation_steps", 1) or 1)
    model.train()
    i, skipped = 0, 0
    while i < len(lrs):  # a step the GradScaler skips is retried at the same LR
        lr = lrs[i]
        _set_lrs(optimizer, lr, ratios)
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=torch.float64, device=device)  # no float32 rounding
        for _ in range(accumulation_steps):
            batch = to_device(next(batches), device)
            with autocast():
                loss = loss_value(step(model, batch))
            check_trainable(loss)
            scaled = loss / accumulation_steps
            if accelerator is not None:
                accelerator.backward(scaled * undo)
            else:
                (scaler.scale(scaled) if scaler is not None else scaled).backward()  # type: ignore[no-untyped-call]
            total += loss.detach().double()
        value = total.item() / accumulation_steps
        if not tracker.finite(i, lr, value):
            break
        if scaler is not None or accelerator is not None:
            if scaler is not None:
                scale = scaler.get_scale()
                scaler.step(optimizer)
                scaler.update()
                was_skipped = scaler.get_scale() < scale  # inf/nan gradients
            else:
                optimizer.step()
                was_skipped = bool(accelerator.optimizer_step_was_skipped)
            if was_skipped:  # the scaler skipped the step: not a point, retried at this LR
                skipped += 1
                if tracker.scaler_gave_up(i, skipped):
                    break
                continue
        else:
            optimizer.step()
        skipped = 0
        val = _evaluate(model, val_set, step, autocast) if val_set is not None else None
        smoothed = tracker.record(i, lr, value, val)
        bar.update(1)
        if i % 10 == 0:
            bar.set_postfix(lr=f"{lr:.2e}", loss=f"{smoothed:.4g}", refresh=False)
        if not tracker.running:
            break
        i += 1
    return tracker.curve


def _evaluate(model: nn.Module, val_set: list[Any], step: StepFn, autocast: Autocast) -> float:
    model.eval()
    with torch.no_grad(), autocast():
        total = sum(loss_value(step(model, b)).double() for b in val_set)
    model.train()
    return float(total) / len(val_set)
