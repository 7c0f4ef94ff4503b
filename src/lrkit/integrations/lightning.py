"""lrkit in PyTorch Lightning: the range test on a LightningModule, as a call or a callback.

The replacement for Lightning's ``Tuner.lr_find``: the same inputs (the module's
``configure_optimizers`` and ``training_step``, a datamodule or dataloaders), lrkit's range
test, suggestion and bit-exact restore. Lightning is imported only by :func:`LRFinder`;
``lightning.pytorch`` and ``pytorch_lightning`` both work.

>>> from lrkit.integrations.lightning import find_lr, LRFinder
>>> res = find_lr(module, datamodule=dm)  # sets module.lr
>>> module.lr == res.suggestion
True
>>> trainer = Trainer(callbacks=[LRFinder()])  # finds at fit start
>>> trainer.fit(module, datamodule=dm)
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lrkit.finder import FinderResult
from lrkit.finder import find_lr as _find_lr

__all__ = ["LRFinder", "find_lr", "optimizers_of", "training_step_fn"]


def optimizers_of(conf: Any) -> list[torch.optim.Optimizer]:
    """The optimizers in any return value of ``configure_optimizers`` Lightning accepts.

    An optimizer; a list or tuple of them; ``(optimizers, schedulers)``; a dict with
    ``"optimizer"`` (and ``"lr_scheduler"``); a list or tuple of such dicts.
    """
    if isinstance(conf, torch.optim.Optimizer):
        return [conf]
    if isinstance(conf, Mapping):
        if "optimizer" not in conf:
            raise ValueError(
                f"configure_optimizers returned a dict without 'optimizer' (keys: {list(conf)})"
            )
        return optimizers_of(conf["optimizer"])
    if isinstance(conf, (list, tuple)):
        if len(conf) == 2 and all(isinstance(part, (list, tuple)) for part in conf):
            return optimizers_of(list(conf[0]))  # (optimizers, schedulers)
        return [opt for part in conf for opt in optimizers_of(part)]
    raise ValueError(
        "configure_optimizers must return an optimizer, a list of them, (optimizers, "
        f"schedulers), a dict with 'optimizer' or a list of dicts (got {type(conf).__name__})"
    )


def _loss_of(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping) and "loss" in out:
        return out["loss"]  # type: ignore[no-any-return]
    raise ValueError(
        "training_step must return the loss (a tensor or a dict with 'loss') for the range "
        f"test (got {type(out).__name__}); a step that returns None skips batches"
    )


def training_step_fn(module: nn.Module) -> Any:
    """``step_fn(model, batch)`` calling ``module.training_step(batch, batch_idx)``."""
    if getattr(module, "automatic_optimization", True) is False:
        raise ValueError(
            "the module uses manual optimization (automatic_optimization=False): its "
            "training_step steps the optimizer itself, so the range test cannot set the LR "
            "between steps; call lrkit.find_lr with a step_fn that returns the loss"
        )
    counter = itertools.count()

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        return _loss_of(module.training_step(batch, next(counter)))  # type: ignore[operator]

    return step


@contextlib.contextmanager
def _quiet_logging(module: nn.Module) -> Iterator[None]:
    """``self.log``/``self.log_dict`` as no-ops: outside a fit loop (before, or after
    ``trainer.fit``) Lightning raises "result collection is not registered yet" or warns."""
    saved = {name: module.__dict__[name] for name in ("log", "log_dict") if name in module.__dict__}
    for name in ("log", "log_dict"):
        object.__setattr__(module, name, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        for name in ("log", "log_dict"):
            if name in saved:
                object.__setattr__(module, name, saved[name])
            else:
                object.__delattr__(module, name)


def _lr_holder(module: nn.Module, attr: str) -> tuple[Any, str]:
    """Where ``module.<attr>`` lives: the module itself or ``module.hparams`` (Lightning's
    tuner looks in the same places; ``lr`` falls back to ``learning_rate``)."""
    names = [attr, "learning_rate"] if attr == "lr" else [attr]
    for name in names:
        if name in module.__dict__ or hasattr(type(module), name):
            return module, name
        hparams = getattr(module, "hparams", None)
        if isinstance(hparams, Mapping) and name in hparams:
            return hparams, name
    raise ValueError(
        f"update_attr={attr!r}: the module has no attribute {attr!r}, nor "
        f"hparams[{attr!r}]; name the attribute configure_optimizers reads, or pass "
        "update_attr=None"
    )


def _set_lr(holder: Any, name: str, lr: float) -> None:
    if isinstance(holder, Mapping):
        holder[name] = lr  # type: ignore[index]
    else:
        setattr(holder, name, lr)


def _train_loader(module: nn.Module, datamodule: Any, train_dataloaders: Any) -> Iterable[Any]:
    if datamodule is not None and train_dataloaders is not None:
        raise ValueError("pass datamodule= or train_dataloaders=, not both")
    if train_dataloaders is not None and hasattr(train_dataloaders, "train_dataloader"):
        datamodule, train_dataloaders = train_dataloaders, None  # as Trainer.fit accepts it
    if datamodule is not None:
        datamodule.prepare_data()
        datamodule.setup(stage="fit")
        return datamodule.train_dataloader()  # type: ignore[no-any-return]
    if train_dataloaders is not None:
        if isinstance(train_dataloaders, (Mapping, Sequence)):
            raise ValueError(
                "train_dataloaders: the range test takes one dataloader (got "
                f"{type(train_dataloaders).__name__} of several)"
            )
        return train_dataloaders  # type: ignore[no-any-return]
    try:
        return module.train_dataloader()  # type: ignore[operator,no-any-return]
    except Exception as error:
        raise ValueError(
            "pass datamodule= or train_dataloaders= (the module defines no train_dataloader)"
        ) from error


def _run(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Any],
    find_kwargs: dict[str, Any],
) -> FinderResult:
    kwargs = dict(find_kwargs)
    if "criterion" not in kwargs:
        kwargs.setdefault("step_fn", training_step_fn(module))
    with _quiet_logging(module):
        return _find_lr(module, optimizer, loader, **kwargs)


def find_lr(
    module: nn.Module,
    datamodule: Any = None,
    *,
    train_dataloaders: Any = None,
    update_attr: str | None = "lr",
    **find_kwargs: Any,
) -> FinderResult:
    """The range test on a LightningModule, with what ``Trainer.fit`` would use.

    The optimizer comes from ``module.configure_optimizers()`` (any return shape Lightning
    accepts; one optimizer), the loss from ``module.training_step(batch, batch_idx)`` with
    ``self.log`` made a no-op, the batches from ``datamodule`` (``prepare_data()`` and
    ``setup("fit")`` are called, as Lightning does), ``train_dataloaders`` or the module's own
    ``train_dataloader()``. ``find_kwargs`` go to :func:`lrkit.find_lr`. The module's
    parameters, buffers and the RNGs are restored bit for bit; then, as Lightning's tuner
    does, ``module.<update_attr>`` (or ``module.hparams[update_attr]``) is set to the
    suggestion, so that ``configure_optimizers`` builds the training optimizer with it.
    """
    holder = _lr_holder(module, update_attr) if update_attr is not None else None
    optimizers = optimizers_of(module.configure_optimizers())  # type: ignore[operator]
    if len(optimizers) != 1:
        raise ValueError(
            f"configure_optimizers returned {len(optimizers)} optimizers; the range test "
            "takes one (as Lightning's tuner): call lrkit.find_lr with the one to tune"
        )
    loader = _train_loader(module, datamodule, train_dataloaders)
    result = _run(module, optimizers[0], loader, find_kwargs)
    if holder is not None and result.suggestion is not None:
        _set_lr(*holder, result.suggestion)
    return result


def _callback_bases() -> tuple[type, ...]:
    """Lightning's ``Callback`` from each package in use (``lightning`` and/or the older
    ``pytorch_lightning``), so one callback object is accepted by either Trainer."""
    bases: list[type] = []
    with contextlib.suppress(ImportError):
        from lightning.pytorch import Callback

        bases.append(Callback)
    legacy = sys.modules.get("pytorch_lightning")
    if legacy is None and not bases:
        try:
            import pytorch_lightning as legacy
        except ImportError as error:
            raise ImportError("LRFinder needs Lightning: pip install 'lrkit[lightning]'") from error
    if legacy is not None:
        bases.append(legacy.Callback)
    return tuple(bases)


@functools.cache
def _callback_class(bases: tuple[type, ...]) -> type:
    class LRFinderCallback(*bases):  # type: ignore[misc]
        """Runs lrkit's range test at fit start; see :func:`LRFinder`."""

        def __init__(self, update_attr: str | None, find_kwargs: dict[str, Any]) -> None:
            super().__init__()
            self.update_attr = update_attr
            self.find_kwargs = find_kwargs
            self.result: FinderResult | None = None

        def on_fit_start(self, trainer: Any, pl_module: nn.Module) -> None:
            if len(trainer.optimizers) != 1:
                raise ValueError(
                    f"LRFinder takes one optimizer; the module has {len(trainer.optimizers)}"
                )
            holder = _lr_holder(pl_module, self.update_attr) if self.update_attr else None
            optimizer = trainer.optimizers[0]
            before = [float(g["lr"]) for g in optimizer.param_groups]
            trainer.fit_loop.setup_data()  # fit reuses these loaders
            kwargs = {"progress": False, **self.find_kwargs}
            self.result = _run(pl_module, optimizer, trainer.train_dataloader, kwargs)
            lr = self.result.suggestion
            if lr is None:
                return
            if holder is not None:
                _set_lr(*holder, lr)
                # rebuild optimizers and schedulers with the new attribute, as fit would
                trainer.strategy.setup_optimizers(trainer)
                optimizer = trainer.optimizers[0]
            if [float(g["lr"]) for g in optimizer.param_groups] == before:
                top = max(before) or 1.0  # configure_optimizers ignores the attribute
                for group, old in zip(optimizer.param_groups, before, strict=True):
                    group["lr"] = lr * old / top

    return LRFinderCallback


def LRFinder(update_attr: str | None = "lr", **find_kwargs: Any) -> Any:
    """A Lightning callback that runs :func:`find_lr` at fit start (like Lightning's
    ``LearningRateFinder``), with lrkit's suggestion and restore.

    On the trainer's own optimizer and train dataloader; afterwards the module's
    ``update_attr`` holds the suggestion and the optimizers (and schedulers) are rebuilt
    from ``configure_optimizers``, so training starts at it; when ``configure_optimizers``
    does not read the attribute, the suggestion is written into the optimizer's groups
    (keeping their ratios). The result is kept as ``callback.result``.
    """
    return _callback_class(_callback_bases())(update_attr, find_kwargs)
