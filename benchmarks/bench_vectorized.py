"""Vectorized training: throughput of fit_many (K members at once) vs K plain fit runs.

Member-steps per second, same model, same batches (synthetic, already on the device, so
data loading is not measured), SGD with momentum, epochs of ``--steps`` batches. The serial
side is lrkit's plain ``fit`` with ``torch.optim.SGD``; its per-run time is measured on
``min(K, 3)`` runs (after a warm-up run) and multiplied by K. The vectorized side trains two
epochs and is timed on the second (the steady state; the first pays for warm-up and, with
``--compile``, for compilation: reported as "1st epoch s"). Peak memory is
``torch.cuda.max_memory_allocated`` of the vectorized run (CUDA only).

    .venv/bin/python benchmarks/bench_vectorized.py                  # CPU, small K
    python3 benchmarks/bench_vectorized.py --device cuda             # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrkit.tasks.models import LeNet5, build
from lrkit.train import fit
from lrkit.vectorized import fit_many


class MLP(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                         nn.ReLU(), nn.Linear(256, 10))  # fmt: skip


MODELS: dict[str, type[nn.Module]] = {"lenet": LeNet5, "mlp": MLP}


def batches(n: int, batch: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator(device="cpu").manual_seed(0)
    return [
        (torch.randn(batch, 1, 28, 28, generator=gen).to(device),
         torch.randint(0, 10, (batch,), generator=gen).to(device))
        for _ in range(n)
    ]  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def measure(
    model: str, batch: int, k: int, steps: int, device: torch.device, compile: bool
) -> dict[str, Any]:
    data = batches(steps, batch, device)
    factory = MODELS[model]
    make = lambda seed: build(seed, factory).to(device)  # noqa: E731
    lrs = [0.01 * (1.2**i) for i in range(k)]

    def serial(runs: int) -> None:
        for i in range(runs):
            m = make(i)
            opt = torch.optim.SGD(m.parameters(), lr=lrs[i], momentum=0.9)
            fit(m, opt, data, nn.CrossEntropyLoss(), 1, progress=False)

    def vectorized(epochs: int) -> list[float]:
        histories = fit_many(make, data, nn.CrossEntropyLoss(), lrs=lrs, seeds=list(range(k)),
                             epochs=epochs, momentum=0.9, device=device, progress=False,
                             metrics=(), strategy="vmap", compile=compile)  # fmt: skip
        return histories[0].epoch_wall_s

    serial(1)
    runs = min(k, 3)
    serial_s = timed(lambda: serial(runs), device) / runs * k
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # Two epochs; the second is the steady state (the first pays for warm-up / compilation).
    marks = vectorized(2)
    vector_s = marks[1] - marks[0]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {
        "model": model, "batch": batch, "k": k, "steps": steps,
        "serial_member_steps_per_s": k * steps / serial_s,
        "vectorized_member_steps_per_s": k * steps / vector_s,
        "speedup": serial_s / vector_s, "peak_mib": peak, "first_epoch_s": marks[0],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--ks", default=None, help="comma-separated K values")
    parser.add_argument("--compile", action="store_true", help="torch.compile the step")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/vectorized.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    ks = [int(k) for k in args.ks.split(",")] if args.ks else (
        [1, 4, 8, 16, 32, 64] if device.type == "cuda" else [1, 4, 8, 16]
    )  # fmt: skip
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"
    print(f"{name}; torch {torch.__version__}; {args.steps} steps per member; "
          f"compile={args.compile}")  # fmt: skip
    print(f"{'model':<7}{'batch':>6}{'K':>4}{'serial m-steps/s':>18}{'vectorized':>12}"
          f"{'speedup':>9}{'peak MiB':>10}{'1st epoch s':>12}")  # fmt: skip
    rows = []
    for model, batch in (("lenet", 64), ("lenet", 256), ("mlp", 64)):
        for k in ks:
            row = measure(model, batch, k, args.steps, device, args.compile)
            rows.append(row)
            peak = "" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
            print(f"{model:<7}{batch:>6}{k:>4}{row['serial_member_steps_per_s']:>18.0f}"
                  f"{row['vectorized_member_steps_per_s']:>12.0f}{row['speedup']:>9.2f}"
                  f"{peak:>10}{row['first_epoch_s']:>12.2f}", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": name, "torch": torch.__version__,
                                    "compile": args.compile, "rows": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
