"""The LR range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017, §3.3).

Train for a few steps while the learning rate grows from tiny to huge, record the loss at
each step, and read a good learning rate off the curve: on the steep downward slope, left of
the minimum. :func:`find_lr` runs the test and returns a :class:`FinderResult`; it leaves the
model, the optimizer and the RNGs exactly as it found them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from lrkit import suggest as _suggest
from lrkit._state import Cache, Snapshot
from lrkit._steps import StepFn, default_step, loss_value, seed_all, to_device

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FinderResult", "find_lr"]

Mode = Literal["exp", "linear"]

UNSTABLE_DECADES = 0.5
"""A suggestion whose runs spread over more than this many decades is flagged unstable."""

TINY_DATA_PASSES = 5.0
"""A range test that goes through the training data this many times or more is flagged.

On so small a dataset the loss falls for the training it has had as much as for the LR, and
train loss says nothing of overfitting. In the suggestion-quality suite the three tasks whose
range test went through the data 7-12 times had the three largest regrets for a constant LR
(1.5-3.8%; the five others, 2-4 passes, at most 1.4%) and for one-cycle (1.1-5.4%; at most
0.8%). ``docs/suggestion.md`` has the numbers."""

SCHEDULE_FACTORS: dict[str, float] = {"constant": 0.67, "one_cycle": 1.25, "cosine": 1.25}
"""``auto``'s suggestion for a schedule = its LR × this factor (the schedule's peak LR).

Fitted on the suggestion-quality suite (``make bench-suggest``, then
``python -m benchmarks.suggest.fit``: 8 tasks × 4 seeds, each factor the one with the lowest
mean regret; 8 seeds move the fit by at most 0.03 decade): a constant LR does best a little
below ``auto``'s LR; one-cycle and cosine, which spend only part of the run at their peak,
tolerate a peak about 1.8× as high. Fitted on each task's neighbours only
(leave-one-task-out) the factors move by at most 0.07 decade.
The factors apply to ``auto`` only; the classic rules are reported as they are.
``docs/suggestion.md`` has the numbers."""


# ----------------------------------------------------------------------------- the result


@dataclass
class Curve:
    """One range test: the LRs tried, the raw and smoothed losses, and why it stopped."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    val_losses: list[float] | None = None
    stop_reason: str = "completed"
    stop_step: int | None = None

    def suggestion_curve(self, raw: bool = False) -> list[float]:
        """The curve a rule reads: the validation loss when there is one, else the train
        loss, EMA-smoothed or (``raw=True``) as measured."""
        if self.val_losses is not None:
            return self.val_losses
        return self.losses if raw else self.smoothed


@dataclass
class FinderResult:
    """What :func:`find_lr` measured and what it suggests.

    ``lrs``, ``losses``, ``smoothed`` (and ``val_losses``) are the first run's curve;
    ``curves`` holds every run. ``suggestions`` maps each rule of :mod:`lrkit.suggest` to its
    LR (the geometric median over runs) or ``None``; ``notes`` says why for each; ``spread``
    is the max-min of each rule's log10 suggestions over runs (0 for one run);
    ``data_passes`` is how many times one range test went through the training data (``None``
    when the loader has no length). :attr:`caveats` says when to trust a suggestion less.
    """

    curves: list[Curve]
    suggestions: dict[str, float | None]
    notes: dict[str, str]
    method: str = "auto"
    for_schedule: str = "constant"
    spread: dict[str, float] = field(default_factory=dict)
    per_run: dict[str, list[float | None]] = field(default_factory=dict)
    group_ratios: list[float] = field(default_factory=lambda: [1.0])
    group: int | None = None
    num_steps: int = 0
    elapsed_s: float = 0.0
    data_passes: float | None = None

    @property
    def lrs(self) -> list[float]:
        return self.curves[0].lrs

    @property
    def losses(self) -> list[float]:
        return self.curves[0].losses

    @property
    def smoothed(self) -> list[float]:
        return self.curves[0].smoothed

    @property
    def val_losses(self) -> list[float] | None:
        return self.curves[0].val_losses

    @property
    def stop_reason(self) -> str:
        return self.curves[0].stop_reason

    @property
    def stop_step(self) -> int | None:
        return self.curves[0].stop_step

    @property
    def runs(self) -> int:
        return len(self.curves)

    @property
    def suggestion(self) -> float | None:
        """The recommended LR for ``for_schedule``: the ``method`` rule's suggestion (``"auto"``
        by default) times the schedule's factor (see :data:`SCHEDULE_FACTORS`)."""
        return self.suggestion_for(self.for_schedule)

    def suggestion_for(self, schedule: str) -> float | None:
        """The suggested (peak) LR for ``schedule``: ``constant``, ``one_cycle`` or ``cosine``
        (``auto``'s LR times the schedule's measured factor; other methods as they are)."""
        if schedule not in SCHEDULE_FACTORS:
            raise ValueError(
                f"schedule must be one of {', '.join(SCHEDULE_FACTORS)} (got {schedule!r})"
            )
        lr = self.suggestions.get(self.method)
        if lr is None or self.method != "auto":
            return lr
        return lr * SCHEDULE_FACTORS[schedule]

    @property
    def unstable(self) -> list[str]:
        """Rules whose suggestion moved more than half a decade between runs."""
        return [m for m, s in self.spread.items() if s > UNSTABLE_DECADES]

    @property
    def tiny_data(self) -> bool:
        """Whether one range test went through the training data :data:`TINY_DATA_PASSES`
        times or more."""
        return self.data_passes is not None and self.data_passes >= TINY_DATA_PASSES

    @property
    def caveats(self) -> list[str]:
        """Why to trust the suggestion less, each with what to do; empty when none applies."""
        out = []
        if self.unstable:
            out.append(
                f"unstable over runs: {', '.join(self.unstable)} moved more than "
                f"{UNSTABLE_DECADES} decade between data orders; prefer a stable rule"
            )
        if self.tiny_data:
            out.append(
                f"the range test went through the training data {self.data_passes:.1f} times: "
                "on a dataset this small the loss falls from training as much as from the LR; "
                "confirm with a short sweep around the suggestion (lrs='around-finder')"
            )
        return out

    @property
    def group_suggestions(self) -> list[float] | None:
        """The suggestion for each param group, keeping the optimizer's LR ratios (``None``
        after ``find_lr(group=i)``, which suggests for group ``i`` alone)."""
        lr = self.suggestion
        if lr is None or self.group is not None:
            return None
        return [lr * r for r in self.group_ratios]

    def __repr__(self) -> str:
        def fmt(v: float | None) -> str:
            return "None" if v is None else f"{v:.3g}"

        rules = ", ".join(f"{m}={fmt(v)}" for m, v in self.suggestions.items() if m != self.method)
        text = (
            f"FinderResult(suggestion={fmt(self.suggestion)} [{self.method}], {rules}, "
            f"points={len(self.lrs)}/{self.num_steps}, runs={self.runs}, "
            f"stop={self.stop_reason!r}"
        )
        if self.unstable:
            text += f", UNSTABLE over runs: {', '.join(self.unstable)}"
        if self.tiny_data:
            text += f", TINY DATA: {self.data_passes:.1f} passes"
        return text + ")"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "method": self.method,
            "for_schedule": self.for_schedule,
            "suggestion": self.suggestion,
            "suggestions": dict(self.suggestions),
            "notes": dict(self.notes),
            "spread": dict(self.spread),
            "per_run": {k: list(v) for k, v in self.per_run.items()},
            "unstable": self.unstable,
            "group_ratios": list(self.group_ratios),
            "group": self.group,
            "num_steps": self.num_steps,
            "elapsed_s": self.elapsed_s,
            "data_passes": self.data_passes,
            "curves": [vars(c).copy() for c in self.curves],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinderResult:
        return cls(
            curves=[Curve(**c) for c in data["curves"]],
            suggestions=dict(data["suggestions"]),
            notes=dict(data["notes"]),
            method=data["method"],
            for_schedule=data.get("for_schedule", "constant"),
            spread=dict(data["spread"]),
            per_run={k: list(v) for k, v in data["per_run"].items()},
            group_ratios=list(data["group_ratios"]),
            group=data.get("group"),
            num_steps=int(data["num_steps"]),
            elapsed_s=float(data["elapsed_s"]),
            data_passes=data.get("data_passes"),
        )

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON to ``path`` and return the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FinderResult:
        """Read a result written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, path: str | Path | None = None, ax: Axes | None = None) -> Figure:
        """Loss against LR (log x) with every suggestion marked; bands show spread over runs.

        Draws into ``ax`` when given, else into a new figure; saves to ``path`` when given.
        Never shows a window or prints.
        """
        from lrkit._plot import plot_finder

        return plot_finder(self, path=path, ax=ax)


# ----------------------------------------------------------------------------- validation


def _check_positive_int(name: str, value: object, minimum: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r}); {fix}")


def _validate(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    criterion: Callable[..., torch.Tensor] | None,
    step_fn: StepFn | None,
    start_lr: float,
    end_lr: float,
    num_steps: int,
    mode: str,
    smooth: float,
    diverge_threshold: float,
    accumulation_steps: int,
    runs: int,
    val_loader: Iterable[Any] | None,
    val_batches: int,
    cache: str,
    method: str,
    for_schedule: str,
) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer (got {type(optimizer).__name__})"
        )
    if not (isinstance(start_lr, (int, float)) and math.isfinite(start_lr) and start_lr > 0):
        raise ValueError(f"start_lr must be a finite number > 0 (got {start_lr!r}); try 1e-7")
    if not (isinstance(end_lr, (int, float)) and math.isfinite(end_lr) and end_lr > start_lr):
        raise ValueError(
            f"end_lr must be > start_lr (got {end_lr!r} <= {start_lr!r}); "
            "raise end_lr or lower start_lr"
        )
    _check_positive_int("num_steps", num_steps, 5, "a range test needs at least 5 steps; try 100")
    if mode not in ("exp", "linear"):
        raise ValueError(f"mode must be 'exp' or 'linear' (got {mode!r})")
    if not (isinstance(smooth, (int, float)) and 0 <= smooth < 1):
        raise ValueError(
            f"smooth must be in [0, 1) (got {smooth!r}); 0 turns smoothing off, 0.98 is usual"
        )
    if not (isinstance(diverge_threshold, (int, float)) and diverge_threshold > 1):
        raise ValueError(
            f"diverge_threshold must be > 1 (got {diverge_threshold!r}); it is a multiple of "
            "the best loss, 4.0 is usual"
        )
    _check_positive_int("accumulation_steps", accumulation_steps, 1, "use 1 for no accumulation")
    _check_positive_int("runs", runs, 1, "use 1 for a single range test")
    _check_positive_int("val_batches", val_batches, 1, "use at least one validation batch")
    if cache not in ("memory", "disk"):
        raise ValueError(f"cache must be 'memory' or 'disk' (got {cache!r})")
    if method not in _suggest.METHODS:
        raise ValueError(f"method must be one of {sorted(_suggest.METHODS)} (got {method!r})")
    if for_schedule not in SCHEDULE_FACTORS:
        raise ValueError(
            f"for_schedule must be one of {', '.join(SCHEDULE_FACTORS)} (got {for_schedule!r})"
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
        length = getattr(loader, "__len__", None)
        if length is not None and length() == 0:
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


# ----------------------------------------------------------------------------- the test


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


def _cycle(loader: Iterable[Any], name: str) -> Iterator[Any]:
    """Iterate ``loader`` forever, starting a new epoch (and a new shuffle) when it ends."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError(f"{name} yielded no batches; give it at least one batch")


def _run_once(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[Any],
    step: StepFn,
    lrs: Sequence[float],
    ratios: Sequence[float | None],
    *,
    smooth: float,
    diverge_threshold: float,
    accumulation_steps: int,
    val_set: list[Any] | None,
    amp: bool,
    device: torch.device,
    bar: Any,
) -> Curve:
    curve = Curve([], [], [], [] if val_set is not None else None)
    ema = _suggest.Ema(smooth)
    best = math.inf
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = (
        (lambda: torch.autocast(device_type=device.type)) if amp else contextlib.nullcontext
    )
    model.train()
    i, skipped = 0, 0
    while i < len(lrs):
        lr = lrs[i]
        for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            if ratio is None:  # find_lr(group=i): the other groups keep their LRs
                continue
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr * ratio)
            else:
                group["lr"] = lr * ratio
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=torch.float64, device=device)  # no float32 rounding
        for _ in range(accumulation_steps):
            batch = to_device(next(batches), device)
            with autocast():
                loss = loss_value(step(model, batch))
            scaled = loss / accumulation_steps
            (scaler.scale(scaled) if scaler is not None else scaled).backward()  # type: ignore[no-untyped-call]
            total += loss.detach().double()
        value = total.item() / accumulation_steps
        if not math.isfinite(value):
            curve.stop_reason = f"non-finite loss ({value}) at step {i} (lr={lr:.3g})"
            curve.stop_step = i
            break
        if scaler is not None:
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            if scaler.get_scale() < scale:  # inf/nan gradients: the scaler skipped the step
                skipped += 1
                if skipped > 50:
                    curve.stop_reason = f"GradScaler skipped 50 steps in a row at step {i}"
                    curve.stop_step = i
                    break
                continue
        else:
            optimizer.step()
        skipped = 0
        smoothed = ema.update(value)
        curve.lrs.append(lr)
        curve.losses.append(value)
        curve.smoothed.append(smoothed)
        if val_set is not None and curve.val_losses is not None:
            curve.val_losses.append(_evaluate(model, val_set, step, autocast))
        bar.update(1)
        if i % 10 == 0:
            bar.set_postfix(lr=f"{lr:.2e}", loss=f"{smoothed:.4g}", refresh=False)
        best = min(best, smoothed)
        if smoothed > diverge_threshold * best:
            curve.stop_reason = (
                f"diverged at step {i} (lr={lr:.3g}): smoothed loss {smoothed:.4g} > "
                f"{diverge_threshold:g} × best {best:.4g}"
            )
            curve.stop_step = i
            break
        i += 1
    return curve


class _StepModule(nn.Module):
    """``step_fn(model, batch)`` as a module, so torch.func can call it functionally."""

    def __init__(self, model: nn.Module, step: StepFn) -> None:
        super().__init__()
        self.model = model
        self.step = step

    def forward(self, batch: Any) -> torch.Tensor:
        return loss_value(self.step(self.model, batch))


def _run_vectorized(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Any],
    step: StepFn,
    lrs: Sequence[float],
    *,
    runs: int,
    seed: int | None,
    smooth: float,
    diverge_threshold: float,
    device: torch.device,
    bar: Any,
) -> list[Curve]:
    """``runs`` range tests as one vmapped computation. Run ``r`` draws its data order from
    ``seed + r`` as the serial loop does, and stops (is frozen) on its own."""
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    from lrkit._batched import VectorizedOptimizer, check_vectorizable, from_torch_optimizer

    check_vectorizable(model)
    kind, options = from_torch_optimizer(optimizer)
    model.train()
    stacked, buffers = stack_module_state([model] * runs)
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {names[id(p)] for p in optimizer.param_groups[0]["params"] if id(p) in names}
    params = {k: v.detach() for k, v in stacked.items() if k in trainable}
    fixed = {k: v.detach() for k, v in stacked.items() if k not in trainable}
    opt = VectorizedOptimizer(kind, params, **options)
    params = opt.params  # views into the optimizer's flat buffer
    wrapper = _StepModule(copy.deepcopy(model).to("meta"), step)

    def member_loss(
        p: dict[str, torch.Tensor], f: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
        batch: Any,
    ) -> torch.Tensor:  # fmt: skip
        state = {f"model.{k}": v for k, v in (p | f | b).items()}
        out: torch.Tensor = functional_call(wrapper, state, (batch,))
        return out

    train_step = vmap(grad_and_value(member_loss), in_dims=(0, 0, 0, 0))
    streams: list[tuple[Any, Iterator[Any]]] = []
    for r in range(runs):  # each iterator starts (and draws its shuffle) right after its seed
        if seed is not None:
            seed_all(seed + r)
        stream = _cycle(loader, "train_loader")
        streams.append((next(stream), stream))
    curves = [Curve([], [], []) for _ in range(runs)]
    emas = [_suggest.Ema(smooth) for _ in range(runs)]
    best = [math.inf] * runs
    active = torch.ones(runs, dtype=torch.bool, device=device)
    for i, lr in enumerate(lrs):
        parts = [to_device(first if i == 0 else next(it), device) for first, it in streams]
        batch = type(parts[0])(torch.stack(p) for p in zip(*parts, strict=True))
        grads, loss = train_step(params, fixed, buffers, batch)
        for r, value in enumerate(loss.detach().double().tolist()):
            if not bool(active[r]):
                continue
            curve = curves[r]
            if not math.isfinite(value):
                curve.stop_reason = f"non-finite loss ({value}) at step {i} (lr={lr:.3g})"
                curve.stop_step = i
                active[r] = False
                continue
            smoothed = emas[r].update(value)
            curve.lrs.append(lr)
            curve.losses.append(value)
            curve.smoothed.append(smoothed)
            best[r] = min(best[r], smoothed)
            if smoothed > diverge_threshold * best[r]:
                curve.stop_reason = (
                    f"diverged at step {i} (lr={lr:.3g}): smoothed loss {smoothed:.4g} > "
                    f"{diverge_threshold:g} × best {best[r]:.4g}"
                )
                curve.stop_step = i
                active[r] = False
        bar.update(int(active.sum()))
        if not bool(active.any()):
            break
        opt.step(grads, torch.full((runs,), lr, dtype=torch.float64, device=device), active)
    return curves


def _evaluate(
    model: nn.Module,
    val_set: list[Any],
    step: StepFn,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> float:
    model.eval()
    with torch.no_grad(), autocast():
        total = sum(loss_value(step(model, b)).double() for b in val_set)
    model.train()
    return float(total) / len(val_set)


def _summarize(
    curves: list[Curve],
) -> tuple[
    dict[str, float | None], dict[str, str], dict[str, float], dict[str, list[float | None]]
]:
    suggestions: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    spread: dict[str, float] = {}
    per_run: dict[str, list[float | None]] = {}
    for name, rule in _suggest.METHODS.items():
        results = [
            rule(np.asarray(c.lrs), np.asarray(c.suggestion_curve(name in _suggest.RAW_INPUT)))
            if c.lrs
            else None
            for c in curves
        ]
        runs = [r.lr if r is not None else None for r in results]
        per_run[name] = runs
        found = [math.log10(lr) for lr in runs if lr is not None]
        if len(found) * 2 < len(curves) or not found:
            suggestions[name] = None
            first = next((r for r in results if r is not None and r.lr is None), None)
            notes[name] = first.note if first is not None else "no points recorded"
            continue
        suggestions[name] = float(10 ** np.median(found))
        spread[name] = float(max(found) - min(found))
        first_ok = next(r for r in results if r is not None and r.lr is not None)
        notes[name] = (
            first_ok.note
            if len(curves) == 1
            else f"geometric median of {len(found)}/{len(curves)} runs, "
            f"spread {spread[name]:.2f} decades"
        )
    return suggestions, notes, spread, per_run


def find_lr(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    criterion: Callable[..., torch.Tensor] | None = None,
    *,
    step_fn: StepFn | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: Mode = "exp",
    smooth: float = 0.98,
    diverge_threshold: float = 4.0,
    val_loader: Iterable[Any] | None = None,
    val_batches: int = 2,
    accumulation_steps: int = 1,
    amp: bool = False,
    seed: int | None = None,
    runs: int = 1,
    vectorized: bool = False,
    group: int | None = None,
    method: str = "auto",
    for_schedule: str = "constant",
    cache: Cache = "memory",
    progress: bool = True,
) -> FinderResult:
    """Run the LR range test and return the curve with its suggestions.

    The LR of step ``i`` is ``start_lr * (end_lr/start_lr) ** (i/(num_steps-1))`` (``"exp"``)
    or the linear interpolation (``"linear"``); every param group gets its own share,
    ``group_lr = lr * group_lr_before / max(group_lrs_before)``, so discriminative ratios
    survive and the x-axis is the largest group's LR. With ``group=i`` only group ``i`` is
    swept (the x-axis is its LR) while the others keep theirs, to place each group's LR from
    its own curve. Each point is one optimizer step; with
    ``accumulation_steps=k`` it averages the loss of ``k`` micro-batches. The loss is
    smoothed by a bias-corrected EMA (``smooth`` is beta); the test stops early when the
    smoothed loss exceeds ``diverge_threshold`` × its best, or at a NaN/inf loss.

    The loss of a point is the batch loss computed *before* that point's update, as in
    fastai and Lightning. With ``val_loader``, ``val_batches`` batches are taken once and
    evaluated after every update; being the same batches every time, that curve has no
    batch noise and is used raw for the suggestions.

    ``for_schedule`` (``constant``, ``one_cycle``, ``cosine``) says which schedule the
    suggestion is for (its peak LR); ``res.suggestion_for(schedule)`` gives the others.

    ``runs=R`` repeats the test ``R`` times (seeds ``seed``, ``seed+1``, …, or fresh data
    orders when ``seed`` is None); each rule then reports the geometric median and its
    spread. ``vectorized=True`` runs the R tests at once as one vmapped computation (a fresh
    SGD/Adam/AdamW/NAdam optimizer with one param group; no val_loader, amp or accumulation):
    the same curves as the serial runs, in about the time of one on a GPU. Whatever happens,
    the model, optimizer and RNG states are restored bit for bit.

    >>> res = find_lr(model, optimizer, loader, nn.CrossEntropyLoss())  # doctest: +SKIP
    >>> res.suggestion, res.plot("finder.png")                         # doctest: +SKIP
    """
    _validate(
        model, optimizer, train_loader, criterion, step_fn, start_lr, end_lr, num_steps,
        mode, smooth, diverge_threshold, accumulation_steps, runs, val_loader, val_batches,
        cache, method, for_schedule,
    )  # fmt: skip
    if vectorized and (val_loader is not None or amp or accumulation_steps != 1):
        raise ValueError(
            "vectorized=True runs plain steps: drop val_loader, amp and accumulation_steps, "
            "or pass vectorized=False"
        )
    step = step_fn if step_fn is not None else default_step(criterion)  # type: ignore[arg-type]
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    group_lrs = [float(g["lr"]) for g in optimizer.param_groups]
    top = max(group_lrs)
    ratios: list[float | None] = [lr / top if top > 0 else 1.0 for lr in group_lrs]
    if group is not None:
        if isinstance(group, bool) or not isinstance(group, int):
            raise ValueError(f"group must be an index of optimizer.param_groups (got {group!r})")
        if not 0 <= group < len(group_lrs):
            raise ValueError(
                f"group must be in 0..{len(group_lrs) - 1} for this optimizer (got {group})"
            )
        if vectorized:
            raise ValueError("group= sweeps one group of several: pass vectorized=False")
        ratios = [1.0 if i == group else None for i in range(len(group_lrs))]
    lrs = lr_schedule(float(start_lr), float(end_lr), num_steps, mode)

    from tqdm.auto import tqdm

    started = time.perf_counter()
    snapshot = Snapshot.take(model, optimizer, cache)
    curves: list[Curve] = []
    try:
        val_set = None
        if val_loader is not None:
            val_iter = iter(val_loader)
            val_set = [
                to_device(b, device) for _, b in zip(range(val_batches), val_iter, strict=False)
            ]
            if not val_set:
                raise ValueError("val_loader yielded no batches; give it at least one batch")
        with tqdm(
            total=num_steps * runs, desc="lr range test", disable=not progress, leave=False
        ) as bar:
            if vectorized:
                curves = _run_vectorized(
                    model, optimizer, train_loader, step, lrs, runs=runs, seed=seed,
                    smooth=smooth, diverge_threshold=diverge_threshold, device=device, bar=bar,
                )  # fmt: skip
            for r in range(0 if vectorized else runs):
                if r:
                    snapshot.restore(rng=False)
                if seed is not None:
                    seed_all(seed + r)
                batches = _cycle(train_loader, "train_loader")
                curve = _run_once(
                    model, optimizer, batches, step, lrs, ratios,
                    smooth=smooth, diverge_threshold=diverge_threshold,
                    accumulation_steps=accumulation_steps, val_set=val_set, amp=amp,
                    device=device, bar=bar,
                )  # fmt: skip
                bar.update(num_steps * (r + 1) - bar.n)
                curves.append(curve)
    finally:
        snapshot.restore()
        snapshot.discard()
    suggestions, notes, spread, per_run = _summarize(curves)
    return FinderResult(
        curves=curves,
        suggestions=suggestions,
        notes=notes,
        method=method,
        for_schedule=for_schedule,
        spread=spread,
        per_run=per_run,
        group_ratios=[1.0] if group is not None else [r or 0.0 for r in ratios],
        group=group,
        num_steps=num_steps,
        elapsed_s=time.perf_counter() - started,
        data_passes=_data_passes(train_loader, num_steps * accumulation_steps),
    )


def _data_passes(loader: Iterable[Any], batches: int) -> float | None:
    """How many times ``batches`` batches go through ``loader`` (``None``: no length)."""
    try:
        size = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None
    return batches / size if size > 0 else None
