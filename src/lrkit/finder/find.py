"""The public entry point of the range test: :func:`find_lr`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from lrkit._loaders import LoaderRng
from lrkit._state import Cache, Snapshot
from lrkit._steps import StepFn, default_step, loader_length, to_device
from lrkit.finder.batched import run_batched
from lrkit.finder.config import FinderConfig, Mode, check_inputs, chosen_groups
from lrkit.finder.result import Curve, FinderResult
from lrkit.finder.serial import cycle, run_serial
from lrkit.groups import lr_scales
from lrkit.optimizers import check_range_test
from lrkit.suggest import METHODS, Suggestion, summarize

__all__ = ["find_lr"]


def find_lr(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    criterion: Callable[..., torch.Tensor] | None = None,
    *,
    step_fn: StepFn | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: Mode = "exp",
    smooth: float = 0.98,
    diverge_threshold: float = 4.0,
    val_loader: Iterable[Any] | None = None,
    val_batches: int = 2,
    accumulation_steps: int = 1,
    amp: bool = False,
    seed: int | None = None,
    runs: int = 1,
    vectorized: bool = False,
    group: int | str | None = None,
    method: str | Callable[..., Suggestion] = "auto",
    for_schedule: str = "constant",
    cache: Cache = "memory",
    progress: bool = True,
    accelerator: Any = None,
) -> FinderResult:
    """Run the LR range test and return the curve with its suggestions.

    The LR of step ``i`` is ``start_lr * (end_lr/start_lr) ** (i/(num_steps-1))`` (``"exp"``)
    or the linear interpolation (``"linear"``); every param group gets its own share,
    ``group_lr = lr * group_lr_before / max(group_lrs_before)``, so discriminative ratios
    survive and the x-axis is the largest group's LR. When the groups carry ``lr_scale``
    (timm's layer decay; :func:`lrkit.param_groups` writes it too) the ratios are those of
    the ``lr_scale`` values instead, as timm's schedulers apply them. With ``group=i`` only
    group ``i`` is swept (the x-axis is its LR) while the others keep theirs, to place each
    group's LR from its own curve; ``group="head"`` sweeps the groups of that ``name`` (both
    halves of a :func:`lrkit.param_groups` layer group split by ``weight_decay``). Each point
    is one optimizer step; with ``accumulation_steps=k`` it averages the loss of ``k``
    micro-batches. The loss is smoothed by a bias-corrected EMA (``smooth`` is beta); the
    test stops early when the smoothed loss exceeds ``diverge_threshold`` × its best, or at
    a NaN/inf loss.

    The loss of a point is the batch loss computed *before* that point's update, as in
    fastai and Lightning. With ``val_loader``, ``val_batches`` batches are taken once and
    evaluated after every update; being the same batches every time, that curve has no
    batch noise and is used raw for the suggestions.

    ``method`` picks the suggestion: a rule of :data:`lrkit.suggest.METHODS` by name, or any
    function ``(lrs, losses) -> Suggestion``. A function reads the EMA-smoothed train loss
    (the validation loss with ``val_loader``) unless it is marked
    :func:`lrkit.suggest.raw_input`; it is reported under its ``__name__``, next to the
    built-in rules, and ``result.method`` holds that name.

    ``for_schedule`` (``constant``, ``one_cycle``, ``cosine``) says which schedule the
    suggestion is for (its peak LR); ``res.suggestion_for(schedule)`` gives the others.

    ``runs=R`` repeats the test ``R`` times (seeds ``seed``, ``seed+1``, …, or fresh data
    orders when ``seed`` is None); each rule then reports the geometric median and its
    spread. ``vectorized=True`` runs the R tests at once as one vmapped computation (a fresh
    SGD/Adam/AdamW/NAdam optimizer with one param group; no val_loader, amp or accumulation):
    the same curves as the serial runs, in about the time of one on a GPU.

    ``seed`` means the whole run: run ``r`` seeds torch, numpy, ``random`` *and* the
    loader's own ``torch.Generator`` (``DataLoader(generator=...)``, a sampler's) with
    ``seed + r``, so the same call gives the same curves; what lrkit cannot seed (an
    ``IterableDataset``, a custom iterable) is named in ``result.caveats``.

    Whatever happens (an error, Ctrl-C), everything the test can touch is restored bit for
    bit: the model's parameters, buffers, ``.grad`` and modes; the tensors the optimizer
    holds outside the model (a learned temperature) and its state; a criterion module's
    parameters and buffers; the global RNGs and the loaders' generators. With ``step_fn``
    lrkit cannot see a criterion: pass its parameters to the optimizer (they are then
    restored) or put it in the model.

    ``accelerator`` (an ``accelerate.Accelerator``, with the model and optimizer it
    ``prepare``d): backward goes through ``accelerator.backward``, so its fp16 GradScaler
    works and a step the scaler skips is retried, not recorded; its scaler state is restored
    too. Inside a gradient-sync-off window (a partial ``accumulate()``) the optimizer step is
    a no-op, so that is refused.

    Prodigy and Schedule-Free optimizers are refused with the reason
    (:func:`lrkit.optimizers.check_range_test`): run them at their documented defaults.

    >>> res = find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), num_steps=30,
    ...               progress=False)
    >>> len(res.lrs), 1e-7 < res.suggestion < 10
    (30, True)
    >>> res.plot("finder.png")                    # doctest: +ELLIPSIS
    <Figure size ... with 1 Axes>
    """
    config = FinderConfig(
        start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, mode=mode, smooth=smooth,
        diverge_threshold=diverge_threshold, val_batches=val_batches,
        accumulation_steps=accumulation_steps, amp=amp, runs=runs, vectorized=vectorized,
        has_val_loader=val_loader is not None, group=group, method=method,
        for_schedule=for_schedule, cache=cache,
    )  # fmt: skip
    check_range_test(optimizer)  # Prodigy, Schedule-Free: refused with the reason
    check_inputs(config, model, optimizer, train_loader, criterion, step_fn, val_loader)
    if accelerator is not None:
        _check_accelerator(accelerator, optimizer, amp=amp, vectorized=vectorized)
    step = step_fn if step_fn is not None else default_step(criterion)  # type: ignore[arg-type]
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    scales = lr_scales(optimizer.param_groups)  # timm's convention: the scale is the share
    group_lrs = scales or [float(g["lr"]) for g in optimizer.param_groups]
    top = max(group_lrs)
    ratios: list[float | None] = [lr / top if top > 0 else 1.0 for lr in group_lrs]
    if group is not None:
        chosen = chosen_groups(group, optimizer)
        peak = max(group_lrs[i] for i in chosen)
        ratios = [(lr / peak if peak > 0 else 1.0) if i in chosen else None
                  for i, lr in enumerate(group_lrs)]  # fmt: skip
    lrs = config.lrs()

    from tqdm.auto import tqdm

    started = time.perf_counter()
    loaders = LoaderRng([train_loader, val_loader], ["train_loader", "val_loader"])
    extra = [criterion] if isinstance(criterion, nn.Module) else []
    snapshot = Snapshot.take(model, optimizer, cache, extra=extra)
    scaler = getattr(accelerator, "scaler", None)
    scaler_state = scaler.state_dict() if scaler is not None else None
    curves: list[Curve] = []
    try:
        if seed is not None:  # the validation subset too is the seed's
            loaders.seed(seed)
        val_set = None
        if val_loader is not None:
            val_iter = iter(val_loader)
            val_set = [
                to_device(b, device) for _, b in zip(range(val_batches), val_iter, strict=False)
            ]
            if not val_set:
                raise ValueError("val_loader yielded no batches; give it at least one batch")
        with tqdm(
            total=num_steps * runs, desc="lr range test", disable=not progress, leave=False
        ) as bar:
            if vectorized:
                curves = run_batched(
                    model, optimizer, train_loader, step, lrs, runs=runs, seed=seed,
                    loaders=loaders, smooth=smooth, diverge_threshold=diverge_threshold,
                    device=device, bar=bar,
                )  # fmt: skip
            for r in range(0 if vectorized else runs):
                if r:
                    snapshot.restore(rng=False)
                if seed is not None:
                    loaders.seed(seed + r)
                batches = cycle(train_loader, "train_loader")
                curve = run_serial(
                    model, optimizer, batches, step, lrs, ratios,
                    smooth=smooth, diverge_threshold=diverge_threshold,
                    accumulation_steps=accumulation_steps, val_set=val_set, amp=amp,
                    device=device, bar=bar, accelerator=accelerator,
                )  # fmt: skip
                bar.update(num_steps * (r + 1) - bar.n)
                curves.append(curve)
    finally:
        snapshot.restore()
        snapshot.discard()
        if scaler is not None and scaler_state is not None:
            scaler.load_state_dict(scaler_state)
        loaders.restore()
    name, rule = config.rule
    summary = summarize(curves, METHODS | {name: rule}, num_steps=num_steps)
    return FinderResult(
        curves=curves,
        suggestions=summary.suggestions,
        notes=summary.notes,
        method=name,
        for_schedule=for_schedule,
        spread=summary.spread,
        per_run=summary.per_run,
        group_ratios=[1.0] if group is not None else [r or 0.0 for r in ratios],
        group=group,
        num_steps=num_steps,
        elapsed_s=time.perf_counter() - started,
        data_passes=_data_passes(train_loader, num_steps * accumulation_steps),
        run_caveats=loaders.caveats if seed is not None else [],
        suggestion_caveats=summary.caveats.get(name, []),
    )


def _check_accelerator(
    accelerator: Any, optimizer: torch.optim.Optimizer, *, amp: bool, vectorized: bool
) -> None:
    """Refuse an accelerator the range test cannot step through (duck-typed: no import)."""
    if not hasattr(accelerator, "backward") or not hasattr(accelerator, "sync_gradients"):
        raise TypeError(
            f"accelerator must be an accelerate.Accelerator (got {type(accelerator).__name__})"
        )
    if not accelerator.sync_gradients:
        raise RuntimeError(
            "find_lr(accelerator=...) was called inside a gradient-sync-off window "
            "(accelerator.sync_gradients is False, e.g. a partial accelerator.accumulate()): "
            "the optimizer step would be a no-op and the curve meaningless; call it outside "
            "accumulate()"
        )
    if amp:
        raise ValueError(
            "amp=True with accelerator=: the accelerator's mixed_precision decides; drop amp"
        )
    if vectorized:
        raise ValueError("vectorized=True runs its own engine; drop accelerator= or vectorized")
    if accelerator.scaler is not None and not hasattr(optimizer, "step_was_skipped"):
        raise ValueError(
            "the accelerator scales the loss (fp16) but the optimizer is not one it prepared; "
            "pass the optimizer returned by accelerator.prepare(...)"
        )


def _data_passes(loader: Iterable[Any], batches: int) -> float | None:
    """How many times ``batches`` batches go through ``loader`` (``None``: no length)."""
    size = loader_length(loader)
    return batches / size if size else None
