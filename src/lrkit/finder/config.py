"""The range test's settings, checked once at construction: :class:`FinderConfig`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from lrkit._state import Cache
from lrkit._steps import StepFn, loader_length
from lrkit.suggest import Rule, Suggestion
from lrkit.suggest.policy import check_schedule, resolve_method

__all__ = ["FinderConfig", "Mode", "check_inputs", "chosen_groups", "lr_schedule"]

Mode = Literal["exp", "linear"]


def _check_int(name: str, value: object, minimum: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r}); {fix}")


@dataclass(frozen=True)
class FinderConfig:
    """Every setting of :func:`lrkit.find_lr` that is not an object to train: a
    :class:`ValueError` naming the argument, the value and the fix at construction.

    >>> FinderConfig(num_steps=50).lrs()[-1]
    10.0
    """

    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_steps: int = 100
    mode: Mode = "exp"
    smooth: float = 0.98
    diverge_threshold: float = 4.0
    val_batches: int = 2
    accumulation_steps: int = 1
    amp: bool = False
    runs: int = 1
    vectorized: bool = False
    has_val_loader: bool = False
    group: int | str | None = None
    method: str | Callable[..., Suggestion] = "auto"
    for_schedule: str = "constant"
    cache: Cache = "memory"

    def __post_init__(self) -> None:
        start, end = self.start_lr, self.end_lr
        if not (isinstance(start, (int, float)) and math.isfinite(start) and start > 0):
            raise ValueError(f"start_lr must be a finite number > 0 (got {start!r}); try 1e-7")
        if not (isinstance(end, (int, float)) and math.isfinite(end) and end > start):
            raise ValueError(
                f"end_lr must be > start_lr (got {end!r} <= {start!r}); "
                "raise end_lr or lower start_lr"
            )
        _check_int("num_steps", self.num_steps, 5, "a range test needs at least 5 steps; try 100")
        if self.mode not in ("exp", "linear"):
            raise ValueError(f"mode must be 'exp' or 'linear' (got {self.mode!r})")
        if not (isinstance(self.smooth, (int, float)) and 0 <= self.smooth < 1):
            raise ValueError(
                f"smooth must be in [0, 1) (got {self.smooth!r}); 0 turns smoothing off, "
                "0.98 is usual"
            )
        threshold = self.diverge_threshold
        if not (isinstance(threshold, (int, float)) and threshold > 1):
            raise ValueError(
                f"diverge_threshold must be > 1 (got {threshold!r}); it is a multiple of "
                "the best loss, 4.0 is usual"
            )
        _check_int("accumulation_steps", self.accumulation_steps, 1, "use 1 for no accumulation")
        _check_int("runs", self.runs, 1, "use 1 for a single range test")
        _check_int("val_batches", self.val_batches, 1, "use at least one validation batch")
        if self.cache not in ("memory", "disk"):
            raise ValueError(f"cache must be 'memory' or 'disk' (got {self.cache!r})")
        resolve_method(self.method)
        check_schedule(self.for_schedule, "for_schedule")
        group = self.group
        if group is not None and (
            isinstance(group, bool) or not isinstance(group, (int, str)) or group == ""
        ):
            raise ValueError(
                "group must be an index of optimizer.param_groups or a group's name "
                f"(param_groups' 'name', e.g. 'head') (got {self.group!r})"
            )
        if self.vectorized and (self.has_val_loader or self.amp or self.accumulation_steps != 1):
            raise ValueError(
                "vectorized=True runs plain steps: drop val_loader, amp and accumulation_steps, "
                "or pass vectorized=False"
            )

    @property
    def rule(self) -> tuple[str, Rule]:
        """The chosen method's name and rule."""
        return resolve_method(self.method)

    def lrs(self) -> list[float]:
        """The LRs of this range test (:func:`lr_schedule`)."""
        return lr_schedule(float(self.start_lr), float(self.end_lr), self.num_steps, self.mode)


def lr_schedule(start_lr: float, end_lr: float, num_steps: int, mode: Mode) -> list[float]:
    """The LRs of a range test: ``num_steps`` points from ``start_lr`` to exactly ``end_lr``.

    ``exp``: ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``;
    ``linear``: ``start_lr + (end_lr - start_lr) * i / (num_steps - 1)``.
    """
    n = num_steps - 1
    if mode == "exp":
        lrs = [start_lr * (end_lr / start_lr) ** (i / n) for i in range(num_steps)]
    else:
        lrs = [start_lr + (end_lr - start_lr) * i / n for i in range(num_steps)]
    lrs[0], lrs[-1] = float(start_lr), float(end_lr)
    return lrs


def check_inputs(
    config: FinderConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    criterion: Callable[..., torch.Tensor] | None,
    step_fn: StepFn | None,
    val_loader: Iterable[Any] | None,
) -> None:
    """Refuse objects that cannot go together, before any training step."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer (got {type(optimizer).__name__})"
        )
    if criterion is None and step_fn is None:
        raise ValueError(
            "pass criterion (loss = criterion(model(x), y)) or step_fn(model, batch) -> loss"
        )
    if criterion is not None and step_fn is not None:
        raise ValueError(
            "pass criterion or step_fn, not both: step_fn computes the whole loss itself"
        )
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if loader is None:
            continue
        if not isinstance(loader, Iterable):
            raise TypeError(f"{name} must be iterable (got {type(loader).__name__})")
        if loader_length(loader) == 0:
            raise ValueError(f"{name} is empty (len 0); give it at least one batch")
    model_params = {id(p) for p in model.parameters()}
    opt_params = [p for g in optimizer.param_groups for p in g["params"]]
    if not any(id(p) in model_params for p in opt_params):
        raise ValueError(
            "optimizer holds none of the model's parameters; build it from model.parameters()"
        )
    for i, group in enumerate(optimizer.param_groups):
        lr = group.get("lr")
        if lr is None or float(lr) < 0:
            raise ValueError(f"optimizer.param_groups[{i}]['lr'] must be a number >= 0 (got {lr})")
    trainable = [p for p in opt_params if p.requires_grad]
    if not trainable:
        raise ValueError(
            f"every parameter the optimizer holds ({len(opt_params)}) is frozen "
            "(requires_grad=False): a range test has nothing to train; unfreeze(model) or "
            "unfreeze some layers before find_lr"
        )
    _refuse_non_finite(model, opt_params)
    if config.group is not None:
        chosen_groups(config.group, optimizer)
        if config.vectorized:
            raise ValueError("group= sweeps one group of several: pass vectorized=False")


def _refuse_non_finite(model: nn.Module, opt_params: list[torch.Tensor]) -> None:
    """A NaN/inf parameter makes every loss NaN: refuse it by name (one sync per device)."""
    named: dict[str, torch.Tensor] = dict(model.named_parameters())
    seen = {id(p) for p in named.values()}
    named |= {f"optimizer tensor #{i} (outside the model)": p
              for i, p in enumerate(opt_params) if id(p) not in seen}  # fmt: skip
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for name, p in named.items():
        by_device.setdefault(p.device, []).append((name, p))
    for items in by_device.values():
        finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in items]).cpu()
        if bool(finite.all()):
            continue
        name, p = items[int((~finite).nonzero()[0])]
        bad = int((~torch.isfinite(p.detach())).sum())
        raise ValueError(
            f"parameter {name!r} holds {bad} NaN/inf values of {p.numel()}: every loss of a "
            "range test would be NaN; reload the weights (or re-initialize) first"
        )


def chosen_groups(group: int | str, optimizer: torch.optim.Optimizer) -> list[int]:
    """The indices of ``optimizer.param_groups`` that ``find_lr(group=)`` sweeps: the index
    itself, or every group whose ``name`` is ``group`` (a layer group that ``weight_decay``
    split in two is swept whole)."""
    groups = optimizer.param_groups
    if isinstance(group, str):
        found = [i for i, g in enumerate(groups) if g.get("name") == group]
        if not found:
            names = sorted({str(g["name"]) for g in groups if "name" in g})
            raise ValueError(
                f"no param group is named {group!r}; names: {', '.join(names) or 'none'} "
                "(lrkit.param_groups names them after the model's children), or pass an index"
            )
        return found
    last = len(groups) - 1
    if not 0 <= group <= last:
        raise ValueError(f"group must be in 0..{last} for this optimizer (got {group})")
    return [group]
