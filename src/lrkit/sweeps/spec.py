"""The grid of a sweep: LRs × schedules × optimizers × seeds × folds, expanded deterministically.

A sweep's identity (:attr:`SweepSpec.sweep_id`, ``<name>-<hash>``) hashes everything that
changes its results: task, LRs, epochs, schedules, optimizers, seeds, folds, n_folds and
data_dir. Every run's config is plain data carrying that identity, with a stable id (a hash of
the config), so the same spec never runs the same config twice, however often it is started,
and an edited spec is a new sweep that never mixes with the old one's runs.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import itertools
import json
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from lrkit.optimizers import DEFAULT_LRS
from lrkit.schedules import for_run
from lrkit.tasks import OPTIMIZERS, TASKS, Task

__all__ = [
    "RunConfig",
    "SweepSpec",
    "check_task_factory",
    "logspace",
    "parse_optimizer",
    "resolve_task",
]

IDENTITY_FIELDS = ("task", "lrs", "epochs", "schedules", "optimizers", "seeds", "folds",
                   "n_folds", "data_dir")  # fmt: skip
"""The spec fields that change a sweep's results: hashed into its identity."""


def logspace(lo: float, hi: float, n: int) -> list[float]:
    """``n`` LRs spaced evenly in log from ``lo`` to ``hi`` (both included)."""
    if not (0 < lo < hi) or n < 2:
        raise ValueError(f"logspace needs 0 < lo < hi and n >= 2 (got {lo}, {hi}, {n})")
    return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]


def parse_optimizer(entry: object) -> tuple[str, float | None]:
    """A sweep's optimizer entry → ``(name, pinned LR or None)``.

    ``"adamw"`` runs at every LR of the grid; ``"name@<lr>"`` (``"adamw@0.001"``) runs at
    that one LR, and ``"name@default"`` at the documented default of a learning-rate-free
    optimizer (:data:`lrkit.optimizers.DEFAULT_LRS`: ``"prodigy@default"`` is Prodigy at
    lr=1.0). Prodigy's lr multiplies its own step-size estimate, so the grid's LRs do not
    apply to it: a bare ``"prodigy"`` is refused, naming ``"prodigy@default"``.
    """
    if not isinstance(entry, str):
        raise ValueError(f"an optimizer entry must be a string (got {entry!r})")
    name, at, pin = entry.partition("@")
    if name not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r} in {entry!r}; valid: {', '.join(OPTIMIZERS)}, each "
            "optionally with '@<lr>' or (for prodigy, schedulefree_adamw, schedulefree_sgd) "
            "'@default'"
        )
    if not at:
        if name == "prodigy":
            raise ValueError(
                "optimizer 'prodigy' in a sweep needs its LR pinned: its lr multiplies its own "
                "step-size estimate, so the grid's LRs do not apply. Write 'prodigy@default' "
                "(lr=1.0, its documented default) or 'prodigy@<multiplier>', e.g. "
                "'prodigy@0.5'"
            )
        return name, None
    if pin == "default":
        if name not in DEFAULT_LRS:
            raise ValueError(
                f"{entry!r}: only {', '.join(DEFAULT_LRS)} have a documented default LR; pin "
                f"{name} with a number, e.g. '{name}@0.001'"
            )
        return name, DEFAULT_LRS[name]
    try:
        lr = float(pin)
    except ValueError:
        lr = math.nan
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(
            f"{entry!r}: the LR after '@' must be a finite number > 0 or 'default' (got {pin!r})"
        )
    return name, lr


@dataclass(frozen=True)
class RunConfig:
    """One run of a sweep: plain data, hashed into a stable ``id``."""

    task: str
    lr: float
    schedule: str
    optimizer: str
    seed: int
    fold: int | None
    n_folds: int
    epochs: int
    data_dir: str | None = None
    sweep: str = ""
    """The identity of the sweep the run belongs to (``SweepSpec.sweep_id``)."""

    @property
    def id(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepSpec:
    """What to sweep. ``lrs``: a list, or ``"around-finder"`` / ``"around-finder:N"`` (run
    the finder, then N points from suggestion/10 to suggestion×3). ``optimizers``: names,
    each swept over ``lrs``, or pinned to one LR (``"prodigy@default"``, ``"adamw@0.001"``,
    see :func:`parse_optimizer`); the finder of ``"around-finder"`` runs with the first
    unpinned one. ``folds``: ``None`` (the task's own split), an int ``n`` (all n folds), or a
    list of fold indices of ``n_folds``."""

    task: str
    lrs: Sequence[float] | str
    epochs: int
    schedules: Sequence[str] = ("constant",)
    optimizers: Sequence[str] = ("sgd",)
    seeds: Sequence[int] = (0,)
    folds: int | Sequence[int] | None = None
    n_folds: int = 5
    data_dir: str | None = None
    name: str = "sweep"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.folds, int) and not isinstance(self.folds, bool):
            if self.folds < 2:
                raise ValueError(f"folds must be >= 2 when an int (got {self.folds})")
            self.n_folds = self.folds  # folds=n: every fold of n
        self.validate()

    @property
    def identity(self) -> str:
        """8 hex digits hashing every field that changes results (:data:`IDENTITY_FIELDS`)."""
        data = self.to_dict()
        blob = json.dumps({k: data[k] for k in IDENTITY_FIELDS}, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:8]

    @property
    def sweep_id(self) -> str:
        """``<name>-<identity>``: the key of this sweep in a store, its runs and its report."""
        return f"{self.name}-{self.identity}"

    def validate(self) -> None:
        """Every mistake found before anything runs, each named with its fix."""
        if not isinstance(self.task, str) or not (self.task in TASKS or ":" in self.task):
            raise ValueError(
                f"unknown task {self.task!r}; built-in tasks: {', '.join(sorted(TASKS))}, or "
                "'module.path:function'"
            )
        if not self.task.startswith("local:"):  # a Task object handed to sweep() is not imported
            check_task_factory(self.task)
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty string without '/' (got {self.name!r})")
        if isinstance(self.lrs, str):
            if not self.lrs.startswith("around-finder"):
                raise ValueError(
                    f"lrs must be a list of LRs or 'around-finder[:N]' (got {self.lrs!r})"
                )
            self.finder_points()
        else:
            if not isinstance(self.lrs, Sequence):
                raise ValueError(
                    f"lrs must be a list of LRs (got {self.lrs!r}); e.g. lrs = [0.01, 0.1] or "
                    "lrs = {logspace = [1e-4, 1, 9]}"
                )
            if not self.lrs:
                raise ValueError("lrs is empty: give at least one LR, e.g. logspace(1e-4, 1, 9)")
            for lr in self.lrs:
                if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
                    raise ValueError(f"every LR must be a finite number > 0 (got {lr!r})")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1 (got {self.epochs!r})")
        for name, values in (("schedules", self.schedules), ("optimizers", self.optimizers),
                             ("seeds", self.seeds)):  # fmt: skip
            if isinstance(values, str) or not isinstance(values, Sequence) or not values:
                example = {"schedules": '["constant"]', "optimizers": '["sgd"]',
                           "seeds": "[0, 1, 2]"}[name]  # fmt: skip
                raise ValueError(
                    f"{name} must be a non-empty list (got {values!r}); e.g. {name} = {example}"
                )
        for opt in self.optimizers:
            parse_optimizer(opt)
        if isinstance(self.lrs, str):
            self.finder_optimizer()
        for sched in self.schedules:
            for_run(sched, 0.1, 100)  # raises with the valid names for a bad spec
        for seed in self.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seeds must be integers (got {seed!r})")
        for fold in self.fold_list():
            if fold is not None and not 0 <= fold < self.n_folds:
                raise ValueError(f"fold {fold} is outside 0..{self.n_folds - 1} (n_folds)")

    def finder_points(self) -> int:
        assert isinstance(self.lrs, str)
        _, _, n = self.lrs.partition(":")
        try:
            points = int(n) if n else 7
        except ValueError:
            raise ValueError(f"around-finder:N needs an integer N (got {n!r})") from None
        if points < 2:
            raise ValueError(f"around-finder:N needs N >= 2 (got {points})")
        return points

    def finder_optimizer(self) -> str:
        """The optimizer ``"around-finder"`` runs the range test with: the first unpinned
        one, which must be one a range test can measure (not a learning-rate-free one)."""
        swept = [name for name, pin in map(parse_optimizer, self.optimizers) if pin is None]
        if not swept:
            raise ValueError(
                f"lrs='around-finder' needs an optimizer swept over LRs, but every one of "
                f"{list(self.optimizers)} is pinned ('@'); add one, e.g. 'adamw'"
            )
        if swept[0] in DEFAULT_LRS:
            raise ValueError(
                f"lrs='around-finder' runs the finder with the first unpinned optimizer "
                f"({swept[0]!r}), which a range test cannot measure; put an optimizer such as "
                f"'adamw' first, or pin it ('{swept[0]}@default')"
            )
        return swept[0]

    def fold_list(self) -> list[int | None]:
        if self.folds is None:
            return [None]
        if isinstance(self.folds, int) and not isinstance(self.folds, bool):
            return list(range(self.folds))
        return [int(f) for f in self.folds]  # type: ignore[union-attr]

    def expand(self, lrs: Sequence[float] | None = None) -> list[RunConfig]:
        """The runs, in a fixed order (LR, schedule, optimizer, seed, fold), without repeats;
        a pinned optimizer (``"prodigy@default"``) runs at its own LR, once."""
        if lrs is None:
            if isinstance(self.lrs, str):
                raise ValueError("resolve 'around-finder' first (sweep() runs the finder)")
            lrs = self.lrs
        seen: dict[str, RunConfig] = {}
        for lr, sched, opt, seed, fold in itertools.product(
            lrs, self.schedules, self.optimizers, self.seeds, self.fold_list()
        ):
            name, pinned = parse_optimizer(opt)
            cfg = RunConfig(self.task, float(lr if pinned is None else pinned), sched, name,
                            int(seed), fold, self.n_folds, self.epochs, self.data_dir,
                            self.sweep_id)  # fmt: skip
            seen.setdefault(cfg.id, cfg)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("lrs", "schedules", "optimizers", "seeds", "folds"):
            if isinstance(out[key], tuple):
                out[key] = list(out[key])
        return out

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepSpec:
        """A spec from a TOML file with the same fields (``lrs = {logspace = [1e-4, 1, 9]}``)."""
        data = tomllib.loads(Path(path).read_text())
        return cls.from_mapping(data, default_name=Path(path).stem)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], default_name: str = "sweep") -> SweepSpec:
        data = dict(data)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sweep fields {unknown}; valid: {', '.join(sorted(known))}")
        for key in ("task", "lrs", "epochs"):
            if key not in data:
                raise ValueError(f"the sweep spec needs {key!r}")
        lrs = data["lrs"]
        if isinstance(lrs, Mapping):
            if set(lrs) != {"logspace"} or len(lrs["logspace"]) != 3:
                raise ValueError("lrs as a table must be {logspace = [lo, hi, n]}")
            lo, hi, n = lrs["logspace"]
            data["lrs"] = logspace(float(lo), float(hi), int(n))
        data.setdefault("name", default_name)
        return cls(**data)


def check_task_factory(name: str) -> None:
    """Check a ``"module.path:function"`` task before anything calls it.

    The rule: the module imports, the attribute exists, and it is a plain Python function
    (``def``, not a builtin, class or other callable) whose return annotation is lrkit's
    :class:`~lrkit.tasks.Task` (or a subclass). So ``"os:system"`` is refused without being
    called, and a typo fails before the first run instead of failing every run.
    """
    if name in TASKS or ":" not in name:
        return
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import the module of task {name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ValueError(f"task {name!r}: module {module_name!r} has no attribute {attr!r}")
    if not inspect.isfunction(factory):
        raise ValueError(
            f"task {name!r} is a {type(factory).__name__}, not a Python function; a task is "
            "'module.path:function' naming a def annotated '-> lrkit.Task'"
        )
    try:
        returns: Any = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve: fall back to its text
        returns = factory.__annotations__.get("return")
    ok = (isinstance(returns, type) and issubclass(returns, Task)) or (
        isinstance(returns, str) and returns.rsplit(".", 1)[-1] == "Task"
    )
    if not ok:
        raise ValueError(
            f"task {name!r} is not annotated to return a Task (annotation: {returns!r}); "
            "annotate it '-> lrkit.Task' so that lrkit knows it builds a task"
        )


def resolve_task(config: RunConfig) -> Task:
    """The Task of a run: the named task, on the run's fold when it has one."""
    from lrkit.tasks import get_task

    return get_task(config.task, data_dir=config.data_dir, fold=config.fold,
                    n_folds=config.n_folds, seed=0)  # fmt: skip
