"""The base of every schedule (a frozen dataclass called with a step), its checks and its names.

Every check here raises a ``ValueError`` that names the argument, shows the value (bounded, so a
100 KB input does not become a 100 KB message) and, where there is one, the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import numbers
import operator
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn, TypeVar

REGISTRY: dict[str, type[Schedule]] = {}
"""Spec name -> schedule class; filled as the schedule modules are imported."""

OLD_NAMES_GO_IN = "0.3"
"""The release that stops accepting the keyword names renamed in 0.2."""

_EXCERPT = 80


def excerpt(value: object, limit: int = _EXCERPT) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length said."""
    return shorten(repr(value), limit)


def shorten(text: str, limit: int = _EXCERPT) -> str:
    """``text`` cut to ``limit`` characters with the full length said."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def fail(name: str, value: object, rule: str, fix: str = "") -> NoReturn:
    raise ValueError(f"{name} must be {rule} (got {excerpt(value)}){'; ' + fix if fix else ''}")


def floor_below_top(min_lr: float, max_lr: float) -> None:
    """Refuse a floor above the top: ``min_lr`` must be ``<= max_lr``."""
    if min_lr > max_lr:
        fail("min_lr", min_lr, f"<= max_lr ({max_lr})")


def number(name: str, value: object, rule: str = "a number") -> float:
    """``value`` as a plain ``int`` or ``float``; numpy scalars are converted, bools refused.

    Plain types keep specs printable: ``repr(np.float64(0.1))`` is not a literal ``parse`` reads.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(name, value, rule, "booleans are not numbers" if _is_bool(value) else "")
    if isinstance(value, (int, float)) and type(value) in (int, float):
        return value  # exactly int or float: kept, so specs print as written
    return float(value)


def positive(name: str, value: object) -> float:
    v = number(name, value, "a finite number > 0")
    if not (math.isfinite(v) and v > 0):
        fail(name, value, "a finite number > 0")
    return v


def non_negative(name: str, value: object) -> float:
    v = number(name, value, "a finite number >= 0")
    if not (math.isfinite(v) and v >= 0):
        fail(name, value, "a finite number >= 0")
    return v


def fraction(name: str, value: object, rule: str, low: float, high: float, fix: str = "") -> float:
    """A number with ``low < value <= high`` (``rule`` says so in words)."""
    v = number(name, value, rule)
    if not low < v <= high:
        fail(name, value, rule, fix)
    return v


def _is_bool(value: object) -> bool:
    return isinstance(value, bool) or "bool" in str(getattr(value, "dtype", type(value).__name__))


def integer(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as a Python int >= ``minimum``.

    Accepts ``int``, numpy integer scalars and 0-d integer tensors (anything with
    ``__index__`` and no dimensions); refuses bools, floats (even ``5.0``) and arrays.
    """
    rule = f"an integer >= {minimum}"
    if _is_bool(value):
        fail(name, value, rule, "booleans are not step counts")
    if getattr(value, "ndim", 0) != 0:
        fail(name, value, rule, "pass a single number, not an array")
    try:
        v = operator.index(value)  # type: ignore[arg-type]  # TypeError is the check
    except TypeError:
        fail(name, value, rule, "int, a numpy integer or a 0-d integer tensor")
    if v < minimum:
        fail(name, value, rule)
    return v


def integers(name: str, values: object, minimum: int, rule: str) -> tuple[int, ...]:
    """A sequence of integers >= ``minimum``, strictly increasing, as a tuple of ints."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        fail(name, values, rule)
    try:
        out = tuple(integer(name, v, minimum) for v in values)
    except ValueError:
        fail(name, values, rule)
    if any(b <= a for a, b in itertools.pairwise(out)):
        fail(name, values, "strictly increasing", "sort them")
    return out


def choice(name: str, value: object, options: Sequence[str]) -> None:
    if value not in options:
        fail(name, value, f"one of {', '.join(repr(o) for o in options)}")


def interpolate(start: float, end: float, pct: float, shape: str) -> float:
    """From ``start`` (pct 0) to ``end`` (pct 1): a straight line or half a cosine.

    The operations are those of PyTorch's OneCycleLR, so the values agree bit for bit.
    """
    if shape == "linear":
        return start + (end - start) * pct
    return end + (start - end) * (1.0 + math.cos(math.pi * pct)) / 2.0


def parameters(cls: type[Schedule] | Schedule) -> list[dataclasses.Field[Any]]:
    """The fields a schedule is built from (derived ``init=False`` fields are not)."""
    return [f for f in dataclasses.fields(cls) if f.init]


def store(schedule: Schedule, **values: Any) -> None:
    """Write checked, normalized values back in ``__post_init__`` (before anyone sees them)."""
    for key, value in values.items():
        object.__setattr__(schedule, key, value)


@dataclass(frozen=True, repr=False)
class Schedule:
    """Base of all schedules: call it with a step, get the learning rate.

    Subclasses set ``name`` (their spec name), implement ``lr_at`` and state their bounds.
    """

    name: ClassVar[str] = ""
    old_names: ClassVar[Mapping[str, str]] = {}
    """Keyword names accepted for one more release: old name -> new name."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls

    def __call__(self, step: int) -> float:
        return self.lr_at(integer("step", step, 0))

    def lr_at(self, t: int) -> float:
        """The value at step ``t`` (a Python int >= 0, unchecked: the fast path)."""
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value the schedule can take."""
        raise NotImplementedError

    def momentum_schedule(self) -> Schedule | None:
        """The momentum (or Adam beta1) schedule that goes with this one, if it has one."""
        return None

    def warmup_length(self) -> int:
        """Steps of warmup at the start (performance-based control waits for them)."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., param: value, ...}`` with nested schedules as dicts; JSON-ready."""
        out: dict[str, Any] = {"name": self.name}
        for f in parameters(self):
            out[f.name] = _to_plain(getattr(self, f.name))
        return out

    def to_spec(self) -> str:
        """The spec string that :func:`~lrkit.schedules.parse` turns back into an equal schedule.

        Parameters left at their defaults are omitted.
        """
        args = ", ".join(
            f"{f.name}={_spec_value(getattr(self, f.name))}"
            for f in parameters(self)
            if f.default is dataclasses.MISSING or getattr(self, f.name) != f.default
        )
        return f"{self.name}({args})"

    def __repr__(self) -> str:
        return self.to_spec()


def _to_plain(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _spec_value(value: Any) -> str:
    if isinstance(value, Schedule):
        return value.to_spec()
    if isinstance(value, tuple):
        return "[" + ", ".join(_spec_value(v) for v in value) + "]"
    return repr(value)


S = TypeVar("S", bound=Schedule)


def renamed(**old_to_new: str) -> Callable[[type[S]], type[S]]:
    """Class decorator: accept the old keyword names for one release, warning with the new one.

    >>> @renamed(rate="lr")
    ... @dataclass(frozen=True, repr=False)
    ... class Flat(Schedule):
    ...     lr: float = 0.1
    ...     def lr_at(self, t: int) -> float:
    ...         return self.lr
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     Flat(rate=0.5)(3)
    0.5
    >>> caught[0].category.__name__, "use lr=" in str(caught[0].message)
    ('DeprecationWarning', True)
    """

    def decorate(cls: type[S]) -> type[S]:
        cls.old_names = dict(old_to_new)
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self: S, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **new_names(cls, kwargs, stacklevel=2))

        cls.__init__ = __init__  # type: ignore[method-assign,assignment]
        return cls

    return decorate


def new_names(cls: type[Schedule], kwargs: dict[str, Any], stacklevel: int = 2) -> dict[str, Any]:
    """``kwargs`` with old keyword names replaced by new ones, a DeprecationWarning for each."""
    if not cls.old_names or not any(k in cls.old_names for k in kwargs):
        return kwargs
    out = dict(kwargs)
    for old, new in cls.old_names.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"{cls.name}() got both {old}= and {new}=; {old} is the old name")
        warnings.warn(
            f"{cls.name}({old}=...) is deprecated: use {new}= ({old} goes in lrkit "
            f"{OLD_NAMES_GO_IN})",
            DeprecationWarning,
            stacklevel=stacklevel + 1,
        )
        out[new] = out.pop(old)
    return out
