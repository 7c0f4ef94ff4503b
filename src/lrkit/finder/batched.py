"""``runs`` range tests at once as one vmapped computation (``find_lr(vectorized=True)``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from lrkit._engine import BatchedModel, stack_batches
from lrkit._loaders import LoaderRng, RunRng
from lrkit._steps import StepFn, to_device
from lrkit.finder.result import Curve
from lrkit.finder.serial import cycle
from lrkit.finder.tracker import CurveTracker
from lrkit.optimizers import batched_twin

__all__ = ["run_batched"]


def _refuse_random_modules(model: nn.Module) -> None:
    """Dropout draws other numbers in a batch than in K plain runs: the curves would differ."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            raise ValueError(
                f"module {name or type(module).__name__!r} ({type(module).__name__}, p="
                f"{module.p}) draws random numbers in training, which a vectorized range test "
                "cannot match to the serial runs; pass vectorized=False"
            )


def run_batched(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Any],
    step: StepFn,
    lrs: Sequence[float],
    *,
    runs: int,
    seed: int | None,
    loaders: LoaderRng,
    smooth: float,
    diverge_threshold: float,
    device: torch.device,
    bar: Any,
) -> list[Curve]:
    """Run ``r`` draws its data order from ``seed + r`` as the serial loop does, and stops
    (is frozen) on its own; the curves equal the serial runs'.

    Each run keeps its own state of every RNG the data draws from (the globals and the
    loader's generators), switched in around each of its batches: its epochs reshuffle
    exactly as a serial run's would, not from a generator the other runs advanced."""
    _refuse_random_modules(model)
    kind, options = batched_twin(optimizer)
    model.train()
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {names[id(p)] for p in optimizer.param_groups[0]["params"] if id(p) in names}
    batched = BatchedModel([model] * runs, step, kind, options, trainable=trainable)
    streams: list[tuple[Any, Iterator[Any]]] = []
    states: list[RunRng] = []
    for r in range(runs):  # each iterator starts (and draws its shuffle) right after its seed
        if seed is not None:
            loaders.seed(seed + r)
        stream = cycle(loader, "train_loader")
        streams.append((next(stream), stream))
        states.append(loaders.capture())

    def draw(r: int) -> Any:
        states[r].apply()
        batch = next(streams[r][1])
        states[r] = loaders.capture()
        return batch

    trackers = [CurveTracker(smooth, diverge_threshold) for _ in range(runs)]
    for i, lr in enumerate(lrs):
        batch = stack_batches([to_device(streams[r][0] if i == 0 else draw(r), device)
                               for r in range(runs)])  # fmt: skip
        grads, loss = batched.grads(batch)
        for tracker, value in zip(trackers, loss.double().tolist(), strict=True):
            if tracker.running and tracker.finite(i, lr, value):
                tracker.record(i, lr, value)
        running = [t.running for t in trackers]
        bar.update(sum(running))
        if not any(running):
            break
        active = torch.tensor(running, dtype=torch.bool, device=device)
        batched.step(grads, torch.full((runs,), lr, dtype=torch.float64, device=device), active)
    return [t.curve for t in trackers]
