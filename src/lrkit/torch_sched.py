"""The adapter: any lrkit schedule as a real ``torch.optim.lr_scheduler.LRScheduler``.

>>> sched = to_torch(optimizer, one_cycle(max_lr=0.1, total_steps=1000))  # doctest: +SKIP
>>> for batch in loader:                                                  # doctest: +SKIP
...     loss.backward(); optimizer.step(); sched.step()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from lrkit.plateau import ReduceOnPlateau
from lrkit.schedules import Schedule, parse

__all__ = ["ScheduleLR", "to_torch"]


def _momentum_key(group: Mapping[str, Any]) -> str | None:
    if "momentum" in group:
        return "momentum"
    if "betas" in group:
        return "betas"
    return None


def _check_momentum_keys(
    optimizer: torch.optim.Optimizer, schedule: Schedule, momentum: Schedule | None
) -> None:
    if momentum is None:
        return
    for i, group in enumerate(optimizer.param_groups):
        if _momentum_key(group) is None:
            raise ValueError(
                f"optimizer.param_groups[{i}] has neither 'momentum' nor 'betas' for "
                f"the momentum schedule of {schedule.name}; pass momentum=False"
            )


class ScheduleLR(LRScheduler):
    """Drives an optimizer's LRs (and momentum) from a pure schedule.

    After construction the LR is ``schedule(0)``; after ``k`` calls of :meth:`step` it is
    ``schedule(k)``, computed in closed form, so nothing drifts and resuming from
    :meth:`state_dict` continues identically. With several param groups the largest base LR
    follows the schedule and every other group keeps its ratio to it
    (``lr_i = schedule(t) * base_lr_i / max(base_lrs)``), so discriminative LRs survive;
    ``scale_groups=False`` gives every group the schedule's value.

    The momentum schedule, when there is one, is written to each group's ``momentum``
    (SGD, RMSprop) or Adam's ``beta1``. With ``plateau``, :meth:`report` feeds a metric to a
    :class:`~lrkit.ReduceOnPlateau`, whose reductions multiply the schedule from then on;
    reports during the schedule's warmup are ignored.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule | str | Mapping[str, Any],
        *,
        momentum: Schedule | str | bool | None = None,
        plateau: ReduceOnPlateau | None = None,
        scale_groups: bool = True,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer (got {type(optimizer).__name__})"
            )
        self.schedule = parse(schedule)
        if momentum is None or momentum is True:
            self.momentum = self.schedule.momentum_schedule()
            if momentum is True and self.momentum is None:
                raise ValueError(
                    f"momentum=True but {self.schedule.name} has no momentum schedule; "
                    "pass one, e.g. momentum='cosine(max_lr=0.95, total_steps=1000, min_lr=0.85)'"
                )
        elif momentum is False:
            self.momentum = None
        else:
            self.momentum = parse(momentum)
        _check_momentum_keys(optimizer, self.schedule, self.momentum)
        if plateau is not None and not isinstance(plateau, ReduceOnPlateau):
            raise TypeError(f"plateau must be a ReduceOnPlateau (got {type(plateau).__name__})")
        self.plateau = plateau
        self.scale_groups = scale_groups
        self.scales = [1.0] * len(optimizer.param_groups)
        super().__init__(optimizer, last_epoch)

    def _ratios(self) -> list[float]:
        base = [float(b) for b in self.base_lrs]
        top = max(base)
        if not self.scale_groups or top <= 0:
            return [1.0] * len(base)
        return [b / top for b in base]

    def get_lr(self) -> list[float | torch.Tensor]:
        value = self.schedule.lr_at(self.last_epoch)
        if len(self.scales) == 1:  # the common case: one group, its ratio is 1
            return [value * self.scales[0]]
        return [value * r * s for r, s in zip(self._ratios(), self.scales, strict=True)]

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        if self.momentum is not None:
            m = self.momentum.lr_at(self.last_epoch)
            for group in self.optimizer.param_groups:
                if _momentum_key(group) == "momentum":
                    group["momentum"] = m
                else:
                    group["betas"] = (m, *tuple(group["betas"])[1:])

    def report(self, metric: float) -> bool:
        """Feed a metric to the plateau controller; return whether it reduced the LRs."""
        if self.plateau is None:
            raise RuntimeError("report() needs a plateau controller: to_torch(..., plateau=...)")
        if self.last_epoch < self.schedule.warmup_length():
            return False
        current = [float(g["lr"]) for g in self.optimizer.param_groups]
        new = self.plateau.update(metric, current)
        if new == current:
            return False
        value = self.schedule.lr_at(self.last_epoch)
        for i, (group, ratio, lr) in enumerate(
            zip(self.optimizer.param_groups, self._ratios(), new, strict=True)
        ):
            group["lr"] = lr
            if value * ratio > 0:
                self.scales[i] = lr / (value * ratio)
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
        return True

    def state_dict(self) -> dict[str, Any]:
        """Plain data only (specs, numbers), so ``torch.load(weights_only=True)`` reads it."""
        state = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("optimizer", "schedule", "momentum", "plateau")
        }
        state["schedule"] = self.schedule.to_dict()
        state["momentum"] = None if self.momentum is None else self.momentum.to_spec()
        state["plateau"] = None if self.plateau is None else self.plateau.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the schedule, its momentum schedule, the step and the plateau controller.

        The saved schedules win over the ones this scheduler was built with. A momentum spec
        saved by lrkit 0.1 for one-cycle or cyclic did not parse; then the momentum schedule
        of the saved schedule is used, which is what it was.
        """
        state = dict(state_dict)
        schedule = parse(state.pop("schedule"))
        saved = state.pop("momentum", None)
        momentum: Schedule | None = None
        if saved is not None:
            try:
                momentum = parse(saved)
            except ValueError:
                momentum = schedule.momentum_schedule()
        _check_momentum_keys(self.optimizer, schedule, momentum)
        plateau = state.pop("plateau", None)
        self.__dict__.update(state)
        self.schedule = schedule
        self.momentum = momentum
        if plateau is not None and self.plateau is not None:
            self.plateau.load_state_dict(plateau)


def to_torch(
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | str | Mapping[str, Any],
    momentum: Schedule | str | bool | None = None,
    *,
    plateau: ReduceOnPlateau | None = None,
    scale_groups: bool = True,
) -> ScheduleLR:
    """Wrap ``schedule`` (a Schedule, a spec string or dict) as a PyTorch LRScheduler.

    ``momentum``: ``None`` uses the schedule's own momentum schedule if it has one
    (one-cycle, cyclic), ``False`` leaves momentum alone, or pass a schedule. See
    :class:`ScheduleLR` for param groups and plateau control.
    """
    return ScheduleLR(
        optimizer, schedule, momentum=momentum, plateau=plateau, scale_groups=scale_groups
    )
