"""lrkit.integrations.lightning against the real Lightning (2.x): find_lr on a LightningModule
(every configure_optimizers shape, a datamodule, self.log before and after trainer.fit) and the
LRFinder callback."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tests.conftest import make_data
from torch import nn
from torch.utils.data import DataLoader

L = pytest.importorskip("lightning.pytorch", reason="needs lrkit[lightning]")

from lrkit.integrations.lightning import LRFinder, find_lr, optimizers_of  # noqa: E402

# Lightning's own notices about this tiny CPU setup (workers, logging intervals, no GPU):
# third-party advice, not lrkit behaviour.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:lightning"),
    pytest.mark.filterwarnings("ignore::UserWarning:lightning_fabric"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),  # torch pytree via lightning
]

SHAPES = ["optimizer", "list", "tuple_opts_scheds", "dict", "list_of_dicts"]


class Module(L.LightningModule):
    def __init__(self, shape: str = "optimizer", lr: float = 1e-3, in_hparams: bool = False):
        super().__init__()
        if in_hparams:
            self.save_hyperparameters({"lr": lr})
        else:
            self.lr = lr
        self.shape = shape
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))

    def current_lr(self) -> float:
        return float(self.lr if "lr" in self.__dict__ else self.hparams["lr"])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        self.log_dict({"also": loss})
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.current_lr(), momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=100)
        return {
            "optimizer": opt,
            "list": [opt],
            "tuple_opts_scheds": ([opt], [sched]),
            "dict": {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}},
            "list_of_dicts": [{"optimizer": opt, "lr_scheduler": sched}],
        }[self.shape]


class DataModule(L.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def prepare_data(self) -> None:
        self.calls.append("prepare_data")

    def setup(self, stage: str) -> None:
        self.calls.append(f"setup:{stage}")
        self.data = make_data(256)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=32, shuffle=True)


def loader() -> DataLoader:
    return DataLoader(make_data(256), batch_size=32, shuffle=True)


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("shape", SHAPES)
def test_find_lr_takes_every_configure_optimizers_shape_and_restores(shape: str) -> None:
    module = Module(shape)
    before = state(module)
    res = find_lr(module, train_dataloaders=loader(), num_steps=40, seed=0, progress=False)
    assert len(res.curves[0].lrs) > 10
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # params and BN buffers
    assert res.suggestion is not None
    assert module.lr == res.suggestion  # update_attr, as Lightning's tuner


def test_find_lr_sets_hparams_lr_when_that_is_where_it_lives() -> None:
    module = Module(in_hparams=True)
    res = find_lr(module, train_dataloaders=loader(), num_steps=40, seed=0, progress=False)
    assert module.hparams["lr"] == res.suggestion


def test_find_lr_refuses_a_missing_update_attr_before_running() -> None:
    module = Module()
    with pytest.raises(ValueError, match="update_attr='rate'"):
        find_lr(module, train_dataloaders=loader(), update_attr="rate", progress=False)


def test_optimizers_of_refuses_a_dict_without_optimizer() -> None:
    with pytest.raises(ValueError, match="without 'optimizer'"):
        optimizers_of({"lr_scheduler": None})


def test_find_lr_accepts_a_datamodule_and_sets_it_up_as_lightning_does() -> None:
    dm = DataModule()
    res = find_lr(Module(), datamodule=dm, num_steps=30, seed=0, progress=False)
    assert dm.calls == ["prepare_data", "setup:fit"]
    assert len(res.curves[0].lrs) > 10


def test_find_lr_self_log_is_harmless_after_trainer_fit() -> None:
    module = Module()
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, train_dataloaders=loader())
    # without the fix: MisconfigurationException "result collection is not registered yet"
    res = find_lr(module, train_dataloaders=loader(), num_steps=30, seed=0, progress=False)
    assert len(res.curves[0].lrs) > 10
    assert "log" not in module.__dict__  # the no-op is gone again


def test_find_lr_refuses_manual_optimization() -> None:
    module = Module()
    module.automatic_optimization = False
    with pytest.raises(ValueError, match="manual optimization"):
        find_lr(module, train_dataloaders=loader(), progress=False)


def test_lrfinder_callback_runs_at_fit_start_and_trains_at_the_suggestion() -> None:
    module = Module(shape="dict")
    seen: list[float] = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    finder = LRFinder(num_steps=40, seed=0)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[finder, Spy()])  # fmt: skip
    trainer.fit(module, train_dataloaders=loader())
    assert finder.result is not None
    lr = finder.result.suggestion
    assert lr is not None
    assert module.lr == lr
    assert seen[0] == pytest.approx(lr)  # the trainer's optimizer starts at the suggestion
    assert trainer.global_step == 8  # one real epoch; the range test's steps do not count


def test_lrfinder_writes_the_lr_when_configure_optimizers_ignores_the_attribute() -> None:
    class Fixed(Module):
        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.5)

    module = Fixed()
    finder = LRFinder(update_attr=None, num_steps=40, seed=0)
    trainer = L.Trainer(max_epochs=1, max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[finder])  # fmt: skip
    trainer.fit(module, train_dataloaders=loader())
    assert finder.result is not None
    assert trainer.optimizers[0].param_groups[0]["lr"] == finder.result.suggestion


def test_lrfinder_is_accepted_by_the_pytorch_lightning_trainer_too() -> None:
    pl = pytest.importorskip("pytorch_lightning", reason="the older package name")
    finder = LRFinder()
    assert isinstance(finder, pl.Callback)
    assert isinstance(finder, L.Callback)
