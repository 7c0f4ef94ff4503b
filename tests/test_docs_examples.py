"""Every ```python block on the docs pages runs, on CPU, in seconds.

Each block runs in a fresh namespace like the doctests' (conftest.py): a tiny model, its
optimizer, loaders of generated data, and, for the pages that name them, a tiny
LightningModule and datamodule, a Hugging Face Trainer on a tiny BERT, an accelerate
Accelerator and a ViT that speaks timm's protocol; the working directory is a temporary one.
A block that cannot run here is preceded by ``<!-- no-run: reason -->`` in the markdown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit import schedules

# mlflow's sqlite store (the Logging block's mirror) trips sqlalchemy 2.1's notice about mlflow's
# own mapping: third-party, not lrkit behaviour
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["index", "find", "schedules", "fine-tuning", "sweeps", "tune", "frameworks", "demo"]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
NO_RUN = re.compile(r"<!--\s*no-run:?(.*?)-->\s*$", re.S)


def blocks() -> list[Any]:
    found = []
    for page in PAGES:
        text = (ROOT / "docs" / f"{page}.md").read_text()
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = NO_RUN.search(before)
            marks = [pytest.mark.skip(reason=f"no-run: {skip[1].strip()}")] if skip else []
            found.append(pytest.param(page, line, m[1], id=f"{page}.md:{line}", marks=marks))
    return found


def test_every_no_run_marker_gives_its_reason() -> None:
    for page in PAGES:
        for m in re.finditer(r"<!--\s*no-run(.*?)-->", (ROOT / "docs" / f"{page}.md").read_text()):
            assert m[1].strip(" :"), f"docs/{page}.md: a no-run marker without a reason"


def test_the_pages_have_blocks_to_run() -> None:
    assert len(blocks()) >= 15


# --- the namespace: what the pages' blocks assume exists ------------------------------------


def _loader(n: int, seed: int, shuffle: bool) -> DataLoader[Any]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    w = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, (x @ w).argmax(dim=1)), batch_size=16, shuffle=shuffle)


def _make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def _lightning() -> dict[str, Any]:
    from tests.test_integrations_lightning import DataModule, Module

    return {"module": Module(), "dm": DataModule()}


def _hf_trainer(tmp: Path) -> dict[str, Any]:
    from tests.test_integrations_hf import trainer

    return {"trainer": trainer(tmp / "hf")}


def _accelerator() -> dict[str, Any]:
    from accelerate import Accelerator

    return {"accelerator": Accelerator(cpu=True)}


def _vit() -> dict[str, Any]:
    from tests.test_groups import TinyViT

    return {"vit": TinyViT()}


def _stored_sweep() -> dict[str, Any]:
    """A finished sweep at runs/digits, as `lrkit.sweep(..., store="runs/digits")` leaves it."""
    lrkit.sweep("digits-mlp", lrs=[0.1], seeds=(0,), epochs=1, store="runs/digits")
    return {}


def _result(ns: dict[str, Any]) -> dict[str, Any]:
    """`res`, `n` and `sched` as the page's earlier blocks leave them."""
    res = lrkit.find_lr(ns["model"], ns["optimizer"], ns["loader"], ns["criterion"], num_steps=30)
    return {"res": res, "n": 100, "sched": schedules.cosine(max_lr=1e-3, total_steps=100)}


def _keras(ns: dict[str, Any]) -> dict[str, Any]:
    import keras

    return {"keras": keras, "model": keras.Sequential([keras.layers.Dense(1)])}


# a name a block uses -> what builds it (only what the block uses is built)
EXTRAS: dict[str, Callable[..., dict[str, Any]]] = {
    "module": _lightning,
    "dm": _lightning,
    "trainer": _hf_trainer,
    "accelerator": _accelerator,
    "vit": _vit,
    "runs/digits": _stored_sweep,
    "res": _result,
    "sched": _result,
    "keras": _keras,
}


@pytest.fixture
def namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    torch.manual_seed(0)
    model = _make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train = _loader(256, seed=1, shuffle=True)
    val = _loader(64, seed=2, shuffle=False)
    return dict(
        torch=torch, nn=nn, lrkit=lrkit, schedules=schedules, S=schedules,
        model=model, optimizer=optimizer, opt=optimizer,
        criterion=nn.CrossEntropyLoss(), loss=nn.CrossEntropyLoss(),
        loader=train, train=train, train_loader=train, val=val, val_loader=val,
        make_model=_make_model,
    )  # fmt: skip


@pytest.mark.parametrize(("page", "line", "code"), blocks())
def test_docs_block_runs(
    page: str, line: int, code: str, namespace: dict[str, Any], tmp_path: Path
) -> None:
    built: set[Callable[..., dict[str, Any]]] = set()
    for name, build in EXTRAS.items():
        if build not in built and re.search(rf"(?<![\w.]){re.escape(name)}\b", code):
            built.add(build)
            if build is _hf_trainer:
                namespace.update(build(tmp_path))
            elif build in (_result, _keras):
                namespace.update(build(namespace))
            else:
                namespace.update(build())
    exec(compile(code, f"docs/{page}.md:{line}", "exec"), namespace)
