"""The adapter: any lrkit schedule as a real ``torch.optim.lr_scheduler.LRScheduler``.

>>> from lrkit.schedules import one_cycle
>>> sched = to_torch(optimizer, one_cycle(max_lr=0.1, total_steps=len(loader)))
>>> for x, y in loader:
...     optimizer.zero_grad(); criterion(model(x), y).backward(); optimizer.step(); sched.step()
>>> sched.last_epoch, sched.get_last_lr()[0] < 1e-5      # the end of the cycle: ~max_lr / 25e4
(16, True)
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from lrkit.groups import lr_scales
from lrkit.plateau import ReduceOnPlateau
from lrkit.schedules import Schedule, parse
from lrkit.schedules._base import excerpt, integer, shorten

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
    ``scale_groups=False`` gives every group the schedule's value. When any group carries an
    ``lr_scale`` (timm's layer-decay convention, which :func:`lrkit.param_groups` also
    writes), each group's LR is ``schedule(t) * lr_scale`` instead — one rule or the other,
    never both, so a group is never scaled twice; momentum is not scaled.

    The momentum schedule, when there is one, is written to each group's ``momentum``
    (SGD, RMSprop) or Adam's ``beta1``. With ``plateau``, a metric reaches the
    :class:`~lrkit.ReduceOnPlateau` either through :meth:`report` or as PyTorch's
    ReduceLROnPlateau takes it, ``step(metric)`` (what Lightning's ``"reduce_on_plateau":
    True`` calls); its reductions multiply the schedule from then on, and reports during
    the schedule's warmup are ignored.
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
        """Each group's share of the schedule's value: its ``lr_scale`` when any group carries
        one (timm's convention, the groups' own LRs then ignored), else its base LR over the
        largest (``scale_groups``), else 1."""
        scales = lr_scales(self.optimizer.param_groups)
        if scales is not None:
            return scales
        base = [float(b) for b in self.base_lrs]
        top = max(base)
        if not self.scale_groups or top <= 0:
            return [1.0] * len(base)
        return [b / top for b in base]

    def _factors(self) -> list[float]:
        """Each group's LR over the schedule's value: its share and its plateau scale."""
        return [r * s for r, s in zip(self._ratios(), self.scales, strict=True)]

    def get_lr(self) -> list[float | torch.Tensor]:
        value = self.schedule.lr_at(self.last_epoch)
        groups = self.optimizer.param_groups
        if len(self.scales) == 1 and "lr_scale" not in groups[0]:  # the common case
            return [value * self.scales[0]]
        return [value * f for f in self._factors()]

    def step(self, epoch: Any = None) -> None:
        """Advance one step; with a plateau controller, ``step(metric)`` also reports ``metric``.

        PyTorch's ReduceLROnPlateau and Lightning (``"reduce_on_plateau": True``) pass the
        monitored metric to ``step``. Without a plateau controller a number that is not an
        integer is refused rather than taken as an epoch; an integer is PyTorch's deprecated
        ``step(epoch)``.
        """
        if epoch is None:
            super().step()
        elif self.plateau is not None:
            metric = _metric(epoch)
            super().step()
            self._write_momentum()
            self.report(metric)
            return
        else:
            super().step(_epoch(epoch))
        self._write_momentum()

    def _write_momentum(self) -> None:
        if self.momentum is None:
            return
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
        groups = self.optimizer.param_groups
        for i, (group, ratio, lr) in enumerate(zip(groups, self._ratios(), new, strict=True)):
            _set_lr(group, lr)
            unscaled = value * ratio
            if unscaled > 0:
                self.scales[i] = lr / unscaled
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

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Restore the step, the plateau controller and the LR and momentum of that step.

        The optimizer's groups get the restored step's LR and momentum at once (not at the
        next :meth:`step`), also when the optimizer was loaded before this scheduler was
        built. If the checkpoint was saved with another schedule, momentum schedule, plateau
        controller or ``scale_groups`` than this scheduler has, it is refused
        (``ValueError``, saying what differs) rather than mixing the two; ``strict=False``
        continues with the checkpoint's, all of them. A momentum spec saved by lrkit 0.1 for
        one-cycle or cyclic did not parse; then the saved schedule's own is used, which is
        what it was.
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
        differences = self._differences(schedule, momentum, plateau, state)
        if differences and strict:
            raise ValueError(
                "the checkpoint's scheduler differs from this one: "
                + "; ".join(differences)
                + ". Build the scheduler as it was saved, or pass strict=False to continue "
                "with the checkpoint's schedule, momentum and plateau"
            )
        self.__dict__.update(state)
        self.schedule = schedule
        self.momentum = momentum
        if plateau is None:
            self.plateau = None
        elif self.plateau is None:
            self.plateau = ReduceOnPlateau(**plateau)
        else:
            self.plateau.load_state_dict(plateau)
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            _set_lr(group, float(lr))
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
        self._write_momentum()

    def _differences(
        self,
        schedule: Schedule,
        momentum: Schedule | None,
        plateau: Mapping[str, Any] | None,
        state: Mapping[str, Any],
    ) -> list[str]:
        def spec(s: Schedule | None) -> str:
            return "none" if s is None else shorten(s.to_spec(), 200)

        out = []
        if schedule != self.schedule:
            out.append(f"schedule {spec(schedule)} (this one: {spec(self.schedule)})")
        if momentum != self.momentum:
            out.append(f"momentum {spec(momentum)} (this one: {spec(self.momentum)})")
        if (plateau is None) != (self.plateau is None):
            saved, mine = ("a", "none") if plateau is not None else ("none", "a")
            out.append(f"plateau controller: {saved} (this one: {mine})")
        if state.get("scale_groups", self.scale_groups) != self.scale_groups:
            out.append(f"scale_groups={state['scale_groups']} (this one: {self.scale_groups})")
        return out


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def _metric(value: Any) -> float:
    """A reported metric as a float: a number or a one-element tensor/array."""
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Real)
        or getattr(value, "numel", lambda: 0)() == 1
        or getattr(value, "size", 0) == 1
    ):
        raise TypeError(f"step(metric) takes a number (got {excerpt(value)})")
    return float(value)


def _epoch(value: Any) -> int:
    """PyTorch's deprecated ``step(epoch)``: only an integer, never a metric taken as one."""
    try:
        return integer("epoch", value, 0)
    except ValueError:
        raise ValueError(
            f"step() got {excerpt(value)}, which is not an epoch number. This ScheduleLR has "
            "no plateau controller, so a metric (ReduceLROnPlateau's step(val_loss), "
            "Lightning's 'reduce_on_plateau': True) has nowhere to go: pass "
            "plateau=lrkit.ReduceOnPlateau(...) to to_torch, or call step() with no argument"
        ) from None


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
