"""Per-layer groups of a Hugging Face ``transformers`` model: embeddings, each block, head.

The blocks are the model's largest ``nn.ModuleList`` (``encoder.layer``, ``h``, ``layers``…),
one group each. What comes before them in the module tree (the embeddings, and parameters
held directly by the modules above the blocks) is the first group; what comes after (final
norm, pooler, head) the last. A weight tied to an earlier one (an LM head tied to the word
embeddings) stays in the earlier group.

transformers is never imported here: a model can only be a ``PreTrainedModel`` once the user
has imported it. :func:`lrkit.param_groups` uses this split by default, so ``decay=`` reaches
every layer of a BERT or GPT model.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from torch import nn

__all__ = ["is_transformers_model", "transformers_split"]

Member = nn.Module | nn.Parameter
Splitter = Callable[[nn.Module], Sequence[Member | Sequence[Member]]]


def is_transformers_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``transformers.PreTrainedModel`` (transformers already imported)."""
    transformers = sys.modules.get("transformers")
    pretrained = getattr(transformers, "PreTrainedModel", None) if transformers else None
    return pretrained is not None and isinstance(model, pretrained)


def _own(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters(recurse=False))


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _unshared(member: Member, seen: set[int]) -> list[Member]:
    """``member``, or the parts of it holding no parameter already ``seen`` (a weight tied to
    an earlier group stays there); adds what it returns to ``seen``."""
    if isinstance(member, nn.Parameter):
        if id(member) in seen:
            return []
        seen.add(id(member))
        return [member]
    ids = {id(p) for p in member.parameters()}
    if not ids & seen:
        seen |= ids
        return [member] if ids else []
    out: list[Member] = []
    for param in _own(member):
        out += _unshared(param, seen)
    for child in member.children():
        out += _unshared(child, seen)
    return out


def transformers_split(model: nn.Module) -> Splitter | None:
    """The per-layer splitter of a ``transformers`` model, or ``None`` for any other model."""
    if not is_transformers_model(model):
        return None
    lists = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 1
    ]
    if not lists:
        return None
    path, blocks = max(lists, key=lambda item: sum(p.numel() for p in item[1].parameters()))
    before: list[Member] = [*_own(model)]
    after: list[Member] = []
    node = model
    for part in path.split("."):  # down from the root to the blocks
        if node is not model:
            before += _own(node)
        passed, later = False, list[Member]()
        for name, child in node.named_children():
            if name == part:
                passed = True
            elif _has_params(child):
                (later if passed else before).append(child)
        after[:0] = later  # a deeper level's tail (pooler) comes before an outer one's (head)
        node = getattr(node, part)
    seen: set[int] = set()
    units: list[list[Member]] = []
    block_units: list[list[Member]] = [[block] for block in blocks]
    for unit in [before, *block_units, after]:
        placed = [m for member in unit for m in _unshared(member, seen)]
        if placed:
            units.append(placed)

    def split(_: nn.Module) -> Sequence[Member | Sequence[Member]]:
        return units

    return split
