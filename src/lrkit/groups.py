"""Discriminative learning rates: split a model into layer groups, give each its own LR.

Earlier layers of a pretrained network hold general features and should move 3–10× less
than later ones (Howard & Ruder, "ULMFiT", 2018; layer-wise LR decay in BERT fine-tuning).

>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
>>> [round(g["lr"], 6) for g in param_groups(model, slice(1e-4, 1e-2))]
[0.0001, 0.001, 0.01]
>>> [round(g["lr"], 6) for g in param_groups(model, 1e-2, decay=0.5)]
[0.0025, 0.005, 0.01]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["describe_groups", "freeze", "layer_groups", "param_groups", "unfreeze"]

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)
Splitter = Callable[[nn.Module], Sequence[nn.Module | Sequence[nn.Module]]]
GroupsArg = int | Splitter | None


def _units(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The model's top-level children holding parameters (root parameters come first)."""
    units: list[tuple[str, list[nn.Module]]] = []
    if any(True for _ in model.parameters(recurse=False)):
        units.append(("(root)", [_RootParams(model)]))
    for name, child in model.named_children():
        if any(True for _ in child.parameters()):
            units.append((name, [child]))
    return units


class _RootParams(nn.Module):
    """Stands for the parameters registered directly on a model (not in a child)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._owner = [model]  # a list, so that it is not registered as a submodule

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Any:
        return self._owner[0].named_parameters(prefix, recurse=False)


def _merge(units: list[tuple[str, list[nn.Module]]], n: int) -> list[tuple[str, list[nn.Module]]]:
    """``n`` contiguous groups of similar parameter count (cut at multiples of total/n)."""
    if n > len(units):
        raise ValueError(
            f"groups={n} but the model has only {len(units)} top-level parts with parameters; "
            f"use groups <= {len(units)} or a splitter function"
        )
    sizes = [sum(p.numel() for m in mods for p in m.parameters()) for _, mods in units]
    total = sum(sizes)
    cumulative = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    cuts: list[int] = []
    start = 0
    for g in range(1, n):
        target = total * g / n
        last_allowed = len(units) - (n - g) - 1  # leave at least one unit per later group
        end = min(range(start, last_allowed + 1), key=lambda i: abs(cumulative[i] - target))
        cuts.append(end + 1)
        start = end + 1
    pieces, lo = [], 0
    for hi in [*cuts, len(units)]:
        chunk = units[lo:hi]
        pieces.append(("+".join(name for name, _ in chunk), [m for _, mods in chunk for m in mods]))
        lo = hi
    return pieces


def layer_groups(model: nn.Module, groups: GroupsArg = None) -> list[tuple[str, list[nn.Module]]]:
    """The model's layer groups as (name, modules), first (input side) to last (head)."""
    if groups is None:
        units = _units(model)
    elif isinstance(groups, int) and not isinstance(groups, bool):
        if groups < 1:
            raise ValueError(f"groups must be >= 1 (got {groups})")
        units = _merge(_units(model), groups)
    elif callable(groups):
        names = {id(m): n for n, m in model.named_modules()}
        units = []
        for part in groups(model):
            mods = [part] if isinstance(part, nn.Module) else list(part)
            units.append(("+".join(names.get(id(m), type(m).__name__) or "(model)"
                                   for m in mods), mods))  # fmt: skip
    else:
        raise TypeError(
            f"groups must be None, an int or a function model -> modules (got {groups!r})"
        )
    if not units:
        raise ValueError("the model has no parameters to group")
    _check_partition(model, units)
    return units


def _group_params(mods: list[nn.Module]) -> list[tuple[str, nn.Parameter, nn.Module]]:
    out = []
    for mod in mods:
        owners = {id(p): m for m in mod.modules() for p in m.parameters(recurse=False)}
        if isinstance(mod, _RootParams):
            owners = {id(p): mod._owner[0] for _, p in mod.named_parameters()}
        for name, p in mod.named_parameters():
            out.append((name, p, owners.get(id(p), mod)))
    return out


def _check_partition(model: nn.Module, units: list[tuple[str, list[nn.Module]]]) -> None:
    """Every trainable parameter in exactly one group, or a clear error naming the culprits."""
    seen: dict[int, str] = {}
    repeated = []
    for name, mods in units:
        for _, p, _ in _group_params(mods):
            if id(p) in seen:
                repeated.append(f"{seen[id(p)]} and {name}")
            seen[id(p)] = name
    names = {id(p): n for n, p in model.named_parameters()}
    missing = [names[i] for i in names if i not in seen]
    foreign = [i for i in seen if i not in names]
    if repeated:
        raise ValueError(f"the splitter puts parameters in two groups: {', '.join(repeated[:3])}")
    if missing:
        raise ValueError(
            f"the splitter misses {len(missing)} parameters ({', '.join(missing[:4])}); every "
            "parameter must be in exactly one group"
        )
    if foreign:
        raise ValueError("the splitter returned modules that are not part of the model")


def _group_lrs(lr: float | slice | Sequence[float], n: int, decay: float | None) -> list[float]:
    if decay is not None:
        if not (isinstance(decay, (int, float)) and 0 < decay <= 1):
            raise ValueError(f"decay must be in (0, 1] (got {decay!r}); 0.8 is usual")
        if not isinstance(lr, (int, float)):
            raise ValueError("decay needs a single lr (the last group's); got a slice or list")
    if isinstance(lr, slice):
        if lr.step is not None:
            raise ValueError("lr slices take slice(lo, hi) or slice(hi), without a step")
        hi = lr.stop
        if hi is None or not (isinstance(hi, (int, float)) and hi > 0):
            raise ValueError(f"slice(lo, hi) needs hi > 0 (got {lr!r})")
        if lr.start is None:  # fastai: slice(hi) -> hi/10 for all but the last group
            return [hi / 10] * (n - 1) + [hi]
        lo = lr.start
        if not (isinstance(lo, (int, float)) and 0 < lo <= hi):
            raise ValueError(f"slice(lo, hi) needs 0 < lo <= hi (got lo={lo!r}, hi={hi!r})")
        if n == 1:
            return [float(hi)]
        return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    if isinstance(lr, (int, float)):
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0 (got {lr!r})")
        factor = 1.0 if decay is None else decay
        return [lr * factor ** (n - 1 - i) for i in range(n)]
    lrs = list(lr)
    if len(lrs) != n:
        raise ValueError(f"lr has {len(lrs)} values for {n} groups; give one per group")
    return [float(x) for x in lrs]


def _no_decay(name: str, owner: nn.Module, patterns: Sequence[str]) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    for pattern in patterns:
        if pattern == "norm" and isinstance(owner, NORM_TYPES):
            return True
        if pattern == leaf or pattern in name.lower():
            return True
    return False


def param_groups(
    model: nn.Module,
    lr: float | slice | Sequence[float],
    *,
    groups: GroupsArg = None,
    decay: float | None = None,
    weight_decay: float | None = None,
    no_decay: Sequence[str] = ("bias", "norm"),
) -> list[dict[str, Any]]:
    """Param groups for any torch optimizer, one LR per layer group (first → last).

    - ``groups``: ``None`` — the model's top-level children; ``n`` — merged into n contiguous
      groups of similar parameter count; a function ``model -> [modules]`` — your own split.
    - ``lr``: ``slice(lo, hi)`` spreads geometrically from the first group to the last
      (fastai); ``slice(hi)`` gives ``hi/10`` to all but the last; ``hi`` with ``decay=d``
      gives group ``i`` of ``n`` the LR ``hi * d**(n-1-i)`` (layer-wise decay); a list gives
      one LR per group; a plain ``hi`` gives every group ``hi``.
    - ``weight_decay``: applied to each group except biases and normalisation weights
      (``no_decay``), which get 0 in a subgroup of their own.

    Frozen parameters (``requires_grad=False``) are left out. Each dict also carries
    ``name`` (its layer group's), ``group`` (its index in the returned list: the index
    ``optimizer.param_groups`` and ``find_lr(group=)`` use) and ``layer`` (its layer group's
    index: with ``weight_decay`` a layer group is two param groups of the same name and
    layer). :func:`describe_groups` prints them; ``find_lr(group="head")`` sweeps a layer
    group by name.
    """
    units = layer_groups(model, groups)
    lrs = _group_lrs(lr, len(units), decay)
    out: list[dict[str, Any]] = []
    for index, ((name, mods), group_lr) in enumerate(zip(units, lrs, strict=True)):
        params = [(n, p, o) for n, p, o in _group_params(mods) if p.requires_grad]
        buckets: list[tuple[list[tuple[str, nn.Parameter, nn.Module]], float | None]]
        if weight_decay is None:
            buckets = [(params, None)]
        else:
            decayed = [t for t in params if not _no_decay(t[0], t[2], no_decay)]
            plain = [t for t in params if _no_decay(t[0], t[2], no_decay)]
            buckets = [(decayed, weight_decay), (plain, 0.0)]
        for bucket, wd in buckets:
            if not bucket:
                continue
            group: dict[str, Any] = {"params": [p for _, p, _ in bucket], "lr": group_lr,
                                     "name": name, "group": len(out), "layer": index}  # fmt: skip
            if wd is not None:
                group["weight_decay"] = wd
            out.append(group)
    if not out:
        raise ValueError("every parameter is frozen: unfreeze(model) or freeze fewer groups")
    return out


def describe_groups(
    optimizer: torch.optim.Optimizer, print_table: bool = True
) -> list[dict[str, Any]]:
    """A row per param group: group, layer, modules, parameter count, LR, weight decay.

    ``group`` is the index in ``optimizer.param_groups`` (what ``find_lr(group=i)`` takes),
    whatever the dicts say; ``layer`` is the layer group of :func:`param_groups` (two param
    groups share it when ``weight_decay`` splits off biases and norms).
    """
    rows = []
    for i, group in enumerate(optimizer.param_groups):
        rows.append({
            "group": i,
            "layer": group.get("layer", i),
            "modules": group.get("name", "—"),
            "params": sum(p.numel() for p in group["params"]),
            "lr": float(group["lr"]),
            "weight_decay": float(group.get("weight_decay", 0.0)),
        })  # fmt: skip
    if print_table:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="param groups")
        for column in ("group", "layer", "modules", "params", "lr", "weight_decay"):
            table.add_column(column, justify="left" if column == "modules" else "right")
        for row in rows:
            table.add_row(str(row["group"]), str(row["layer"]), str(row["modules"]),
                          f"{row['params']:,}",
                          f"{row['lr']:.3g}", f"{row['weight_decay']:.3g}")  # fmt: skip
        Console().print(table)
    return rows


def freeze(
    model: nn.Module, upto: int | None = None, *, groups: GroupsArg = None, train_bn: bool = True
) -> nn.Module:
    """Freeze the layer groups before ``upto`` (default: all but the last); returns ``model``.

    Frozen parameters get ``requires_grad=False``: no gradient, so no optimizer update.
    With ``train_bn`` (the default, as in fastai) normalisation layers stay trainable: their
    statistics adapt to the new data at almost no cost in parameters.
    """
    units = layer_groups(model, groups)
    n = len(units)
    upto = n - 1 if upto is None else upto
    if isinstance(upto, bool) or not isinstance(upto, int) or not 0 <= upto <= n:
        raise ValueError(f"upto must be in 0..{n} for {n} groups (got {upto!r})")
    for index, (_, mods) in enumerate(units):
        for _, p, owner in _group_params(mods):
            frozen = index < upto and not (train_bn and isinstance(owner, NORM_TYPES))
            p.requires_grad_(not frozen)
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again; returns ``model``."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model
