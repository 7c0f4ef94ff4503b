"""Names the docstring examples under src/lrkit use, so they run as doctests on CPU.

Lives at the repository root (not inside the package) so it never ships in the wheel; pytest
loads it for every path under the root, ``src/lrkit`` included. Each doctest gets fresh
objects (a tiny MLP, its SGD optimizer, loaders of generated data) and runs in its own
temporary directory, so an example that writes a file (a plot, a store, a log dir) leaves
nothing in the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from _pytest.doctest import DoctestItem
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# the keras example runs on this torch (tensorflow is not a dependency); set before any import
os.environ.setdefault("KERAS_BACKEND", "torch")


def _loader(n: int, seed: int, shuffle: bool) -> DataLoader[Any]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    w = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, (x @ w).argmax(dim=1)), batch_size=16, shuffle=shuffle)


@pytest.fixture(autouse=True)
def _doctest_names(
    request: pytest.FixtureRequest, doctest_namespace: dict[str, Any], tmp_path: Path
) -> None:
    if not isinstance(request.node, DoctestItem):
        return
    import lrkit
    from lrkit import schedules

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train = _loader(256, seed=1, shuffle=True)
    val = _loader(64, seed=2, shuffle=False)
    doctest_namespace.update(
        torch=torch,
        nn=nn,
        lrkit=lrkit,
        schedules=schedules,
        model=model,
        optimizer=optimizer,
        opt=optimizer,
        criterion=nn.CrossEntropyLoss(),
        loss=nn.CrossEntropyLoss(),
        loader=train,
        train=train,
        train_loader=train,
        val=val,
        val_loader=val,
    )
    name = request.node.name
    if name.startswith("lrkit.integrations.lightning"):
        doctest_namespace.update(_lightning_names())
    elif name.startswith("lrkit.integrations.hf"):
        doctest_namespace.update(_hf_names(tmp_path))
    request.getfixturevalue("monkeypatch").chdir(tmp_path)


def _lightning_names() -> dict[str, Any]:
    """A tiny LightningModule, its datamodule, and a quiet one-epoch CPU ``Trainer``."""
    import functools
    import warnings

    import lightning.pytorch as L
    from tests.test_integrations_lightning import DataModule, Module

    # Lightning's own notices about a tiny CPU run (workers, log intervals) and torch's pytree
    # deprecation it trips: third-party, not lrkit behaviour (pytest resets filters per test)
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning_fabric")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*", FutureWarning)
    trainer = functools.partial(
        L.Trainer, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    return {"module": Module(), "dm": DataModule(), "Trainer": trainer}


def _hf_names(tmp_path: Path) -> dict[str, Any]:
    """A Hugging Face ``Trainer`` on a tiny BERT built from its config (no download)."""
    from tests.test_integrations_hf import trainer

    return {"trainer": trainer(tmp_path / "hf")}
