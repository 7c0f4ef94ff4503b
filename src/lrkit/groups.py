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

import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lrkit._timm import follows_matcher, follows_timm, matcher_levels
from lrkit._transformers import transformers_split

__all__ = [
    "describe_groups",
    "freeze",
    "layer_groups",
    "lr_scales",
    "param_groups",
    "unfreeze",
]

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)
Member = nn.Module | nn.Parameter
"""What a layer group holds: modules (all their parameters) or single parameters."""
Splitter = Callable[[nn.Module], Sequence[Member | Sequence[Member]]]
GroupsArg = int | Splitter | None
Unit = tuple[str, list[Member]]
Owned = tuple[str, nn.Parameter, nn.Module]
"""A parameter with its qualified name and the module that registers it."""


def _owners(model: nn.Module) -> dict[int, tuple[str, nn.Module]]:
    """``id(parameter)`` → (qualified name, owning module), in ``named_parameters`` order."""
    out: dict[int, tuple[str, nn.Module]] = {}
    for mod_name, mod in model.named_modules():
        for name, p in mod.named_parameters(recurse=False):
            out.setdefault(id(p), (f"{mod_name}.{name}" if mod_name else name, mod))
    return out


def _units(model: nn.Module) -> list[Unit]:
    """The model's top-level children holding parameters (root parameters come first)."""
    units: list[Unit] = []
    root: list[Member] = list(model.parameters(recurse=False))
    if root:
        units.append(("(root)", root))
    for name, child in model.named_children():
        if any(True for _ in child.parameters()):
            units.append((name, [child]))
    return units


def _label(names: Sequence[str]) -> str:
    """``blocks.3.attn.qkv.weight``, ``norm.bias`` → ``blocks.3+norm``: what a level holds."""
    parts: list[str] = []
    for name in names:
        pieces = name.split(".")
        head = ".".join(pieces[:2]) if len(pieces) > 2 and pieces[1].isdigit() else pieces[0]
        if head not in parts:
            parts.append(head)
    return "+".join(parts)


def _matched_units(model: nn.Module) -> list[Unit]:
    """One unit per level of ``model.group_matcher(coarse=False)``, first to last."""
    named = list(model.named_parameters())
    matcher = model.group_matcher(coarse=False)  # type: ignore[operator]
    levels = matcher_levels([n for n, _ in named], matcher)
    buckets: list[list[tuple[str, nn.Parameter]]] = [[] for _ in range(max(levels.values()) + 1)]
    for name, p in named:
        buckets[levels[name]].append((name, p))
    return [(_label([n for n, _ in b]), [p for _, p in b]) for b in buckets if b]


def _params_of(member: Member) -> list[nn.Parameter]:
    return list(member.parameters()) if isinstance(member, nn.Module) else [member]


def _size(members: list[Member]) -> int:
    return sum(p.numel() for m in members for p in _params_of(m))


def _merge(units: list[Unit], n: int) -> list[Unit]:
    """``n`` contiguous groups of similar parameter count (cut at multiples of total/n)."""
    if n > len(units):
        raise ValueError(
            f"groups={n} but the model has only {len(units)} top-level parts with parameters; "
            f"use groups <= {len(units)} or a splitter function"
        )
    sizes = [_size(members) for _, members in units]
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
        pieces.append(("+".join(name for name, _ in chunk), [m for _, ms in chunk for m in ms]))
        lo = hi
    return pieces


def _split(model: nn.Module, splitter: Splitter) -> list[Unit]:
    names: dict[int, str] = {id(m): n or "(model)" for n, m in model.named_modules()}
    names.update({id(p): n for n, p in model.named_parameters()})
    units: list[Unit] = []
    for part in splitter(model):
        members: list[Member] = (
            [part] if isinstance(part, (nn.Module, torch.Tensor)) else list(part)
        )
        for m in members:
            if not isinstance(m, (nn.Module, torch.Tensor)):
                raise TypeError(
                    f"a splitter returns modules, parameters or lists of them (got {m!r})"
                )
        label = "+".join(names.get(id(m), type(m).__name__) for m in members)
        units.append((label, members))
    return units


def lr_scales(param_groups: Sequence[Mapping[str, Any]]) -> list[float] | None:
    """Each group's ``lr_scale`` (1 where missing) when any group carries one, else ``None``.

    timm's convention, which :func:`param_groups` also writes: a scheduler sets a group's LR to
    ``value * lr_scale``, and the groups' own LRs are not consulted. :func:`lrkit.to_torch`
    and :func:`lrkit.find_lr` follow it through this one function, so neither can apply the
    scale on top of the LR ratios.
    """
    if not any("lr_scale" in g for g in param_groups):
        return None
    return [float(g.get("lr_scale", 1.0)) for g in param_groups]


def _default_units(model: nn.Module) -> list[Unit]:
    """The levels of a timm ``group_matcher()``, one group per block of a transformers
    model, or else the model's top-level children."""
    if follows_matcher(model):
        return _matched_units(model)
    split = transformers_split(model)
    return _split(model, split) if split is not None else _units(model)


def layer_groups(model: nn.Module, groups: GroupsArg = None) -> list[Unit]:
    """The model's layer groups as (name, members), first (input side) to last (head).

    Members are modules or single parameters. ``groups=None`` takes the levels of the
    model's ``group_matcher()`` when it has one (timm's models), one group per block of a
    ``transformers`` model (embeddings, each layer, head), else its top-level children
    (parameters registered on the model itself first, as ``(root)``).
    """
    if groups is None:
        units = _default_units(model)
    elif isinstance(groups, int) and not isinstance(groups, bool):
        if groups < 1:
            raise ValueError(f"groups must be >= 1 (got {groups})")
        units = _merge(_default_units(model), groups)
    elif callable(groups):
        units = _split(model, groups)
    else:
        raise TypeError(
            f"groups must be None, an int or a function model -> modules (got {groups!r})"
        )
    if not units:
        raise ValueError("the model has no parameters to group")
    _check_partition(model, units)
    return units


def _group_params(
    members: list[Member], owners: Mapping[int, tuple[str, nn.Module]]
) -> list[Owned]:
    """Each member's parameters with their qualified names and owners (foreign ones: no name)."""
    out: list[Owned] = []
    for member in members:
        fallback = member if isinstance(member, nn.Module) else nn.Module()  # foreign: no owner
        for p in _params_of(member):
            name, owner = owners.get(id(p), ("", fallback))
            out.append((name, p, owner))
    return out


def _check_partition(model: nn.Module, units: list[Unit]) -> None:
    """Every trainable parameter in exactly one group, or a clear error naming the culprits."""
    owners = _owners(model)
    seen: dict[int, str] = {}
    repeated = []
    for name, members in units:
        for _, p, _ in _group_params(members, owners):
            if id(p) in seen:
                repeated.append(f"{seen[id(p)]} and {name}")
            seen[id(p)] = name
    missing = [n for i, (n, _) in owners.items() if i not in seen]
    foreign = [i for i in seen if i not in owners]
    if repeated:
        raise ValueError(f"the splitter puts parameters in two groups: {', '.join(repeated[:3])}")
    if missing:
        raise ValueError(
            f"the splitter misses {len(missing)} parameters ({', '.join(missing[:4])}); every "
            "parameter must be in exactly one group (a splitter may list parameters, e.g. "
            "[model.cls_token, model.patch_embed])"
        )
    if foreign:
        raise ValueError("the splitter returned modules that are not part of the model")


def _group_lrs(
    lr: float | slice | Sequence[float], n: int, decay: float | None
) -> tuple[list[float], list[float]]:
    """Each group's LR and its ``lr_scale`` (its LR over the largest)."""
    if decay is not None:
        if not (isinstance(decay, (int, float)) and 0 < decay <= 1):
            raise ValueError(f"decay must be in (0, 1] (got {decay!r}); 0.8 is usual")
        if not isinstance(lr, (int, float)):
            raise ValueError("decay needs a single lr (the last group's); got a slice or list")
    lrs = _plain_lrs(lr, n, decay)
    if decay is not None:  # timm's scales, bit for bit: decay ** (levels - 1 - level)
        return lrs, [decay ** (n - 1 - i) for i in range(n)]
    top = max(lrs)
    return lrs, [x / top if top > 0 else 1.0 for x in lrs]


def _plain_lrs(lr: float | slice | Sequence[float], n: int, decay: float | None) -> list[float]:
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


def _no_decay_rule(model: nn.Module, patterns: Sequence[str] | None) -> Callable[[Owned], bool]:
    """Which parameters get no weight decay.

    Always those the model names in ``no_weight_decay()`` (fnmatch patterns, as timm reads
    them). Then, with ``patterns=None``: for a model that speaks timm's protocol, every
    parameter of one dimension or less (biases, norm scales), as timm does; for others the
    default patterns ``("bias", "norm")``. Given patterns: a parameter whose leaf name equals
    one, or whose name contains one; ``"norm"`` also matches every normalisation layer.
    """
    declared = getattr(model, "no_weight_decay", None)
    named = tuple(declared()) if callable(declared) else ()
    timm_style = patterns is None and follows_timm(model)
    chosen = ("bias", "norm") if patterns is None else tuple(patterns)

    def rule(item: Owned) -> bool:
        name, p, owner = item
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in named):
            return True
        if timm_style:
            return p.ndim <= 1
        leaf = name.rsplit(".", 1)[-1]
        for pattern in chosen:
            if pattern == "norm" and isinstance(owner, NORM_TYPES):
                return True
            if pattern == leaf or pattern in name.lower():
                return True
        return False

    return rule


def param_groups(
    model: nn.Module,
    lr: float | slice | Sequence[float],
    *,
    groups: GroupsArg = None,
    decay: float | None = None,
    weight_decay: float | None = None,
    no_decay: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Param groups for any torch optimizer, one LR per layer group (first → last).

    - ``groups``: ``None`` — the levels of the model's ``group_matcher()`` when it has one
      (timm's models), else its top-level children (parameters registered on the model
      itself first); ``n`` — those merged into n contiguous groups of similar parameter
      count; a function ``model -> [modules or parameters]`` — your own split (an item may
      be a list, e.g. ``[model.cls_token, model.patch_embed]``).
    - ``lr``: ``slice(lo, hi)`` spreads geometrically from the first group to the last
      (fastai); ``slice(hi)`` gives ``hi/10`` to all but the last; ``hi`` with ``decay=d``
      gives group ``i`` of ``n`` the LR ``hi * d**(n-1-i)`` (layer-wise decay); a list gives
      one LR per group; a plain ``hi`` gives every group ``hi``.
    - ``weight_decay``: applied to each group except the parameters of ``no_decay`` (see
      below), which get 0 in a subgroup of their own.
    - ``no_decay``: parameters the model's ``no_weight_decay()`` names never decay; with the
      default ``None`` neither do biases and normalisation weights (for timm's models: every
      parameter of one dimension or less, timm's rule); or give name patterns.

    Every group carries both its ``lr`` and timm's ``lr_scale`` (its LR over the largest;
    ``d**(n-1-i)`` with ``decay``), with ``lr == max LR * lr_scale``: a plain optimizer,
    timm's schedulers (which set ``lr = value * lr_scale``) and :func:`lrkit.to_torch` then
    give the same LRs. On a model with timm's protocol, ``param_groups(model, lr,
    decay=0.75, weight_decay=0.05)`` has exactly the groups, parameters, order,
    ``lr_scale`` and ``weight_decay`` of timm's ``param_groups_layer_decay`` (with the
    model's ``no_weight_decay()``).

    Frozen parameters (``requires_grad=False``) are left out. Each dict also carries
    ``name`` (its layer group's), ``group`` (its index in the returned list: the index
    ``optimizer.param_groups`` and ``find_lr(group=)`` use) and ``layer`` (its layer group's
    index: with ``weight_decay`` a layer group is two param groups of the same name and
    layer). :func:`describe_groups` prints them; ``find_lr(group="head")`` sweeps a layer
    group by name.
    """
    units = layer_groups(model, groups)
    lrs, scales = _group_lrs(lr, len(units), decay)
    owners = _owners(model)
    excluded = _no_decay_rule(model, no_decay)
    out: list[dict[str, Any]] = []
    for index, (name, members) in enumerate(units):
        params = [t for t in _group_params(members, owners) if t[1].requires_grad]
        buckets: list[tuple[list[Owned], float | None]]
        if weight_decay is None:
            buckets = [(params, None)]
        else:
            decayed = [t for t in params if not excluded(t)]
            plain = [t for t in params if excluded(t)]
            buckets = [(decayed, weight_decay), (plain, 0.0)]
        for bucket, wd in buckets:
            if not bucket:
                continue
            group: dict[str, Any] = {
                "params": [p for _, p, _ in bucket],
                "lr": lrs[index],
                "lr_scale": scales[index],
                "name": name,
                "group": len(out),
                "layer": index,
            }
            if wd is not None:
                group["weight_decay"] = wd
            out.append(group)
    if not out:
        raise ValueError("every parameter is frozen: unfreeze(model) or freeze fewer groups")
    if groups is None and follows_matcher(model):  # timm opens groups in parameter order
        position = {id(p): i for i, p in enumerate(model.parameters())}
        out.sort(key=lambda g: position[id(g["params"][0])])
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
    owners = _owners(model)
    for index, (_, members) in enumerate(units):
        for _, p, owner in _group_params(members, owners):
            frozen = index < upto and not (train_bn and isinstance(owner, NORM_TYPES))
            p.requires_grad_(not frozen)
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again; returns ``model``."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model
