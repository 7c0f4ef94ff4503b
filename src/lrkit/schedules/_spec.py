"""The spec language: schedules from strings and dicts, parsed with ``ast``, never evaluated.

A spec is a call of a schedule name with literal arguments (numbers, strings, booleans, lists,
nested schedule calls), exactly what :meth:`Schedule.to_spec` prints; a dict is what
:meth:`Schedule.to_dict` writes. Errors name the schedule, the parameter and the valid ones,
and quote at most a bounded excerpt of the input.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Mapping
from typing import Any

from lrkit.schedules._base import REGISTRY, Schedule, excerpt, new_names, parameters, shorten


def names() -> list[str]:
    """Every schedule name a spec may use."""
    return sorted(REGISTRY)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown schedule {excerpt(name)}; valid: {', '.join(names())}")


def _build(name: str, kwargs: dict[str, Any]) -> Schedule:
    cls = REGISTRY.get(name)
    if cls is None:
        raise _unknown(name)
    kwargs = new_names(cls, kwargs, stacklevel=2)
    params = [f.name for f in parameters(cls)]
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(
            f"{name}() has no parameter {shorten(', '.join(map(repr, unknown)))}; "
            f"valid: {', '.join(params)}"
        )
    missing = [
        f.name
        for f in parameters(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(
            f"{name}() is missing {', '.join(missing)}; parameters: {', '.join(params)}"
        )
    return cls(**kwargs)


def _from_node(node: ast.expr, spec: str) -> Any:
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise ValueError(f"bad schedule spec {excerpt(spec)}: call schedules by plain name")
        cls = REGISTRY.get(node.func.id)
        if cls is None:
            raise _unknown(node.func.id)
        params = [f.name for f in parameters(cls)]
        if len(node.args) > len(params):
            raise ValueError(f"{node.func.id}() takes at most {len(params)} arguments")
        kwargs = {p: _from_node(a, spec) for p, a in zip(params, node.args, strict=False)}
        for kw in node.keywords:
            if kw.arg is None:
                raise ValueError(f"bad schedule spec {excerpt(spec)}: ** is not allowed")
            if kw.arg in kwargs:
                raise ValueError(f"{node.func.id}() got {excerpt(kw.arg)} twice")
            kwargs[kw.arg] = _from_node(kw.value, spec)
        return _build(node.func.id, kwargs)
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(_from_node(e, spec) for e in node.elts)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(
            f"bad schedule spec {excerpt(spec)}: only schedule calls, numbers, strings, "
            f"booleans and lists are allowed (at {excerpt(ast.unparse(node))})"
        ) from None


def _from_mapping(data: Mapping[str, Any]) -> Schedule:
    data = dict(data)
    name = data.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"a schedule dict needs a 'name' (one of: {', '.join(names())})")
    kwargs = {k: _plain_to_value(v) for k, v in data.items()}
    return _build(name, kwargs)


def _plain_to_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _from_mapping(value)
    if isinstance(value, list):
        return tuple(_plain_to_value(v) for v in value)
    return value


def parse(spec: str | Mapping[str, Any] | Schedule) -> Schedule:
    """A schedule from a spec string, a dict (as :meth:`Schedule.to_dict` writes), or itself.

    Strings are parsed as Python expressions but never evaluated: only calls of schedule
    names with literal arguments (numbers, strings, booleans, lists, nested schedules).
    Specs written with the keyword names of lrkit 0.1 still parse, with a DeprecationWarning.

    >>> s = parse("warmup(one_cycle(max_lr=3e-3, total_steps=1000), warmup_steps=100)")
    >>> round(s(400), 6)
    0.003
    >>> parse(s.to_spec()) == s == parse(s.to_dict())
    True
    """
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, Mapping):
        return _from_mapping(spec)
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string, a dict or a Schedule (got {type(spec).__name__})")
    try:
        tree = ast.parse(spec.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"bad schedule spec {excerpt(spec)}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"bad schedule spec {excerpt(spec)}: nested too deeply") from None
    if isinstance(tree.body, ast.Name):  # a bare name: say what it needs
        name = tree.body.id
        if name in REGISTRY:
            params = ", ".join(f.name for f in parameters(REGISTRY[name]))
            raise ValueError(f"{name} needs its parameters: {name}({params})")
        raise _unknown(name)
    try:
        result = _from_node(tree.body, spec)
    except RecursionError:
        raise ValueError(f"bad schedule spec {excerpt(spec)}: nested too deeply") from None
    if not isinstance(result, Schedule):
        raise ValueError(
            f"bad schedule spec {excerpt(spec)}: expected a schedule call like cosine(...)"
        )
    return result
