r"""timm's model protocol, read without timm: ``group_matcher()`` and ``no_weight_decay()``.

timm's models say how they split into layers (``group_matcher``: regexes over parameter
names) and which parameters never decay (``no_weight_decay``). :mod:`lrkit.groups` follows
both, so that its groups equal timm's ``param_groups_layer_decay`` on timm's models.

>>> matcher = {"stem": r"^cls_token|pos_embed|patch_embed",
...            "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}
>>> names = ["cls_token", "patch_embed.w", "blocks.0.w", "blocks.1.w", "norm.w", "head.w"]
>>> matcher_levels(names, matcher)
{'cls_token': 0, 'patch_embed.w': 0, 'blocks.0.w': 1, 'blocks.1.w': 2, 'norm.w': 2, 'head.w': 3}
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torch import nn

__all__ = ["MERGE_WITH_PREVIOUS", "follows_matcher", "follows_timm", "matcher_levels"]

MERGE_WITH_PREVIOUS = 99999.0
"""timm's marker: a matcher rule whose suffix ends in 99999 joins the layer before it."""


def follows_matcher(model: nn.Module) -> bool:
    """Whether ``model`` has timm's ``group_matcher(coarse=False)``."""
    return callable(getattr(model, "group_matcher", None))


def follows_timm(model: nn.Module) -> bool:
    """Whether ``model`` speaks timm's protocol (``group_matcher()`` or ``no_weight_decay()``)."""
    return callable(getattr(model, "group_matcher", None)) or callable(
        getattr(model, "no_weight_decay", None)
    )


def _rules(matcher: Mapping[str, Any]) -> list[tuple[re.Pattern[str], float, tuple[float, ...]]]:
    """A dict matcher as (regex, ordinal of its entry, suffix) rules, tried in order."""
    rules: list[tuple[re.Pattern[str], float, tuple[float, ...]]] = []
    for ordinal, spec in enumerate(matcher.values()):
        if spec is None:
            continue
        if isinstance(spec, str):
            rules.append((re.compile(spec), float(ordinal), ()))
        else:
            for pattern, suffix in spec:
                rules.append((re.compile(pattern), float(ordinal), tuple(suffix or ())))
    return rules


def matcher_levels(
    names: Sequence[str], matcher: Mapping[str, Any] | Callable[[str], Any]
) -> dict[str, int]:
    """Parameter name → layer level (0 = input side), from a timm-style ``group_matcher``.

    Each name gets a sort key: for a dict matcher, the first rule whose regex matches the
    start of the name gives (its entry's position, the regex's numeric captures, the rule's
    suffix); names no rule matches (the head) get +inf; a callable matcher gives the key
    itself. Distinct keys, sorted, are numbered 0, 1, …; a key ending in 99999 keeps the
    number of the key before it (timm's "merge with the previous group", e.g. a ViT's final
    norm joins the last block). This is the layer map of timm's ``param_groups_layer_decay``.
    """
    keys: dict[str, tuple[float, ...]] = {}
    rules = _rules(matcher) if isinstance(matcher, Mapping) else None
    for name in names:
        if rules is None:
            got = matcher(name)  # type: ignore[operator]
            keys[name] = tuple(float(v) for v in (got if isinstance(got, Iterable) else [got]))
            continue
        keys[name] = (math.inf,)
        for regex, ordinal, suffix in rules:
            found = regex.match(name)
            if found:
                captures = tuple(float(g) for g in found.groups() if g is not None)
                keys[name] = (ordinal, *captures, *suffix)
                break
    level_of: dict[tuple[float, ...], int] = {}
    level = -1
    for key in sorted(set(keys.values())):
        if level < 0 or key[-1] != MERGE_WITH_PREVIOUS:
            level += 1
        level_of[key] = level
    return {name: level_of[key] for name, key in keys.items()}
