"""A small, honest training loop: the one the CLI, the demo and the sweeps use.

``fit`` runs epochs of ``zero_grad → loss → backward → step → scheduler.step`` and returns a
:class:`History` with the LR and loss of every optimizer step and a summary of every epoch.
There is nothing else in it: no hooks beyond ``callbacks``, no device magic beyond moving
batches to the model's device, no hidden state.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from lrkit._loaders import LoaderRng
from lrkit._steps import (
    StepFn,
    check_trainable,
    default_step,
    loader_length,
    loss_value,
    to_device,
)
from lrkit.loggers import FitLog, Logger
from lrkit.optimizers import is_schedule_free
from lrkit.plateau import ReduceOnPlateau
from lrkit.schedules import Constant, Join, Polynomial, Scale, Schedule, Warmup, parse
from lrkit.torch_sched import ScheduleLR, to_torch

__all__ = ["BN_BATCHES", "METRICS", "History", "fit"]

BN_BATCHES = 50
"""Training batches Schedule-Free's BatchNorm recipe forwards to recompute the running
statistics at the averaged weights (its README's number)."""

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BatchMetric = Callable[[nn.Module, Any], float | torch.Tensor]
"""``metric(model, batch) -> mean over the batch``, for batches a ``step_fn`` reads."""
Callback = Callable[["History"], bool | None]


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose arg-max class equals the target (sum over the batch)."""
    return (outputs.argmax(dim=-1) == targets).float().sum()


def _mae(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs.reshape(targets.shape) - targets).abs().float().sum()


METRICS: dict[str, Metric] = {"accuracy": _accuracy, "mae": _mae}
"""Built-in metrics by name: each returns the *sum* over a batch; ``fit`` divides by count."""


@dataclass
class History:
    """What a training run did: per optimizer step and per epoch.

    ``step_lr`` / ``step_loss``: the LR used by, and the training loss of, every optimizer
    step (the largest group's LR: the one a schedule drives, the others keep their ratio).
    ``epochs``: one dict per finished epoch with ``epoch``, ``train_loss`` and, with
    validation data, ``val_loss`` and each metric. ``epoch_wall_s``: seconds since the start
    at the end of each epoch. A run that hit a NaN/inf loss has ``diverged=True`` and says
    where in ``stop_reason``. ``caveats`` names what ``seed=`` could not control (a loader
    that orders its own data).
    """

    step_lr: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    epoch_wall_s: list[float] = field(default_factory=list)
    stopped_early: bool = False
    stop_reason: str = "completed"
    diverged: bool = False
    caveats: list[str] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        """The last finished epoch's summary (empty when none finished)."""
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        return cls(**dict(data))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _scheduler(optimizer: torch.optim.Optimizer, schedule: Any) -> tuple[LRScheduler | None, bool]:
    """The torch scheduler for ``schedule``, and whether it takes metric reports."""
    if schedule is None:
        return None, False
    if isinstance(schedule, ScheduleLR):
        return schedule, schedule.plateau is not None
    if isinstance(schedule, LRScheduler):
        return schedule, False
    if isinstance(schedule, ReduceOnPlateau):
        lr = max(float(g["lr"]) for g in optimizer.param_groups)
        return to_torch(optimizer, Constant(lr), momentum=False, plateau=schedule), True
    if isinstance(schedule, (Schedule, str, Mapping)):
        return to_torch(optimizer, schedule), False
    raise TypeError(
        "schedule must be a Schedule, a spec string or dict, a ReduceOnPlateau or a torch "
        f"LRScheduler (got {type(schedule).__name__})"
    )


def _fit_params(
    optimizer: torch.optim.Optimizer, schedule: Any, epochs: int, seed: int | None
) -> dict[str, Any]:
    """What ``fit`` tells its loggers about the run."""
    spec = schedule.to_spec() if isinstance(schedule, Schedule) else schedule
    return {"fit/optimizer": type(optimizer).__name__, "fit/epochs": epochs, "fit/seed": seed,
            "fit/lr": max(float(g["lr"]) for g in optimizer.param_groups),
            "fit/schedule": spec if isinstance(spec, str) else type(spec).__name__}  # fmt: skip


def schedule_length(schedule: Schedule) -> int | None:
    """The steps after which ``schedule`` only holds its last LR (``None``: it never ends).

    One-cycle, WSD, cosine, linear and polynomial (without ``cycle``) end at ``total_steps``;
    a warmup adds its steps, a join its last boundary, a scale nothing.
    """
    if isinstance(schedule, Warmup):
        inner = schedule_length(schedule.schedule)
        return None if inner is None else schedule.warmup_steps + inner
    if isinstance(schedule, Join):
        last = schedule_length(schedule.schedules[-1])
        return None if last is None else schedule.boundaries[-1] + last
    if isinstance(schedule, Scale):
        return schedule_length(schedule.schedule)
    if isinstance(schedule, Polynomial) and schedule.cycle:
        return None
    total = getattr(schedule, "total_steps", None)
    return total if isinstance(total, int) else None


def _check_length(schedule: Any, run_steps: int | None, epochs: int) -> None:
    """Refuse a lrkit schedule that ends before the run does: it would hold its last LR."""
    if run_steps is None:
        return
    done = 0
    if isinstance(schedule, ScheduleLR):
        schedule, done = schedule.schedule, max(schedule.last_epoch, 0)
    elif isinstance(schedule, (str, Mapping)):
        schedule = parse(schedule)
    if not isinstance(schedule, Schedule):
        return
    total = schedule_length(schedule)
    if total is None or total - done >= run_steps:
        return
    left = total - done
    raise ValueError(
        f"the schedule ends after total_steps={total} ({left} steps left) but this run takes "
        f"{run_steps} optimizer steps ({epochs} epochs x {run_steps // epochs} batches): it "
        f"would hold its last LR ({schedule.lr_at(total):.3g}) for {run_steps - left} steps. "
        f"Build it with total_steps={run_steps + done} (epochs * len(train_loader)), or "
        "train fewer epochs"
    )


def resolve_metrics(
    metrics: Sequence[str | Metric] | None, step_fn: StepFn | None
) -> dict[str, Metric]:
    """Metric names or functions → ``{name: function}`` (``fit`` and ``fit_many`` share it)."""
    if metrics is None:
        metrics = () if step_fn is not None else ("accuracy",)
    if metrics and step_fn is not None:
        raise ValueError(
            "metrics need (outputs, targets) batches, which step_fn hides; pass metrics=() "
            "with step_fn (the val loss is still recorded)"
        )
    out: dict[str, Metric] = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in METRICS:
                raise ValueError(f"unknown metric {m!r}; built in: {', '.join(sorted(METRICS))}")
            out[m] = METRICS[m]
        elif callable(m):
            out[getattr(m, "__name__", f"metric{len(out)}")] = m
        else:
            raise TypeError(f"metrics must be names or callables (got {m!r})")
    return out


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    step: StepFn,
    metrics: Mapping[str, Metric],
    criterion: Callable[..., torch.Tensor] | None,
    device: torch.device,
    batch_metric: BatchMetric | None = None,
) -> dict[str, float]:
    """Mean loss (weighted by batch size) and metrics of ``model`` over ``loader``.

    ``batch_metric(model, batch)`` (a batch mean) is averaged the same way, under its
    ``__name__`` (``"metric"`` for a lambda).
    """
    metric_name = _metric_name(batch_metric)
    metric_sum = 0.0
    was_training = model.training
    model.eval()
    total_loss, count = 0.0, 0
    sums = dict.fromkeys(metrics, 0.0)
    try:
        with torch.no_grad():
            for raw in loader:
                batch = to_device(raw, device)
                if metrics and criterion is not None:
                    inputs, targets = batch
                    outputs = model(inputs)
                    loss = criterion(outputs, targets)
                    for name, fn in metrics.items():
                        sums[name] += float(fn(outputs, targets))
                    n = len(targets)
                else:
                    loss = loss_value(step(model, batch))
                    n = len(batch[0]) if isinstance(batch, (list, tuple)) else 1
                total_loss += float(loss) * n
                count += n
                if batch_metric is not None:
                    metric_sum += float(batch_metric(model, batch)) * n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("val_loader yielded no batches; give it at least one batch")
    out = {"val_loss": total_loss / count}
    out.update({name: value / count for name, value in sums.items()})
    if metric_name is not None:
        out[metric_name] = metric_sum / count
    return out


def _metric_name(batch_metric: BatchMetric | None) -> str | None:
    if batch_metric is None:
        return None
    if not callable(batch_metric):
        raise TypeError(f"metric must be a function (model, batch) -> value (got {batch_metric!r})")
    name = getattr(batch_metric, "__name__", "metric")
    return "metric" if name == "<lambda>" else name


def _is_constant(schedule: Any) -> bool:
    """Whether ``schedule`` (``fit``'s argument) holds one LR: none, or a constant one."""
    if schedule is None:
        return True
    if isinstance(schedule, ScheduleLR):
        schedule = schedule.schedule if schedule.plateau is None else None
    elif isinstance(schedule, (str, Mapping)):
        schedule = parse(schedule)
    return isinstance(schedule, Constant)


def _schedule_free_caveat(schedule: Any) -> str:
    spec = schedule.to_spec() if isinstance(schedule, Schedule) else type(schedule).__name__
    if isinstance(schedule, (str, Mapping)):
        spec = parse(schedule).to_spec()
    return (
        f"Schedule-Free needs no schedule (its averaging anneals, and warmup is its "
        f"warmup_steps option); its docs allow one, and this run applied {spec} on top"
    )


def _to_average(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Any],
    step: StepFn,
    device: torch.device,
    loaders: LoaderRng,
) -> None:
    """Schedule-Free's switch to evaluation: parameters to the average x
    (``optimizer.eval()``), then, when the model has BatchNorm layers, their running
    statistics recomputed at x: up to :data:`BN_BATCHES` training batches forwarded in train
    mode under ``no_grad`` (the recipe of Schedule-Free's README), averaged exactly (the
    statistics are reset and the layers' momentum set to ``None`` for the pass, so a short
    loader leaves nothing of the statistics at y). The pass gives every RNG (the loader's
    order, dropout's) back its state, so that the rest of the run draws what it would have.
    """
    getattr(optimizer, "eval")()  # noqa: B009 (not on torch.optim.Optimizer's type)
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms:
        return
    rng = loaders.capture()
    momenta = [m.momentum for m in norms]
    was_training = model.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the pass
        model.train()
        with torch.no_grad():
            for raw in itertools.islice(loader, BN_BATCHES):
                step(model, to_device(raw, device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
        rng.apply()


def _in_train_mode(optimizer: torch.optim.Optimizer) -> bool:
    return bool(optimizer.param_groups[0]["train_mode"])


@contextlib.contextmanager
def _restoring(loaders: LoaderRng, active: bool) -> Iterator[None]:
    """Give the loaders' generators back their state at the end of a seeded run."""
    try:
        yield
    finally:
        if active:
            loaders.restore()


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    criterion: Callable[..., torch.Tensor] | None = None,
    epochs: int = 1,
    *,
    schedule: Schedule | str | Mapping[str, Any] | ReduceOnPlateau | LRScheduler | None = None,
    val_loader: Iterable[Any] | None = None,
    metrics: Sequence[str | Metric] | None = None,
    step_fn: StepFn | None = None,
    metric: BatchMetric | None = None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    loggers: Sequence[Logger | str] = (),
) -> History:
    """Train ``model`` for ``epochs`` and return its :class:`History`.

    ``schedule`` is stepped after every optimizer step (a lrkit schedule goes through
    :func:`lrkit.to_torch`); a :class:`~lrkit.ReduceOnPlateau` (or a ``to_torch(...,
    plateau=...)``) is fed the validation loss after every epoch. ``metrics`` (default
    ``("accuracy",)``) are computed on ``val_loader`` after every epoch. ``callbacks`` are
    called with the history after every epoch; one that returns ``True`` stops training.
    ``metric(model, batch) -> batch mean`` is a metric for batches a ``step_fn`` reads (whose
    outputs ``metrics`` cannot see), recorded beside the val loss under its ``__name__``.
    ``loggers`` (names ``"tensorboard"``, ``"mlflow"``, ``"wandb"`` or
    :class:`lrkit.loggers.Logger` objects) get every step's ``train/lr`` and ``train/loss``
    and every epoch's summary as ``epoch/<name>``; loggers made from names are closed at the end.
    A NaN/inf training loss stops the run cleanly: it is recorded as diverged, not raised.
    With ``seed``, the same call gives the same history bit for bit on CPU: it seeds torch,
    numpy, ``random`` and the loader's own ``torch.Generator`` (or its sampler's), and gives
    that generator back its old state at the end; ``history.caveats`` names a loader whose
    order lrkit could not seed. A lrkit schedule that ends (``total_steps``) before the run
    does is refused with a ``ValueError``, as PyTorch's ``OneCycleLR`` refuses to step past
    its end.

    A Schedule-Free optimizer (``schedulefree``'s, e.g. ``OPTIMIZERS["schedulefree_adamw"]``)
    is switched as its docs ask: ``optimizer.train()`` before each epoch's steps,
    ``optimizer.eval()`` before each evaluation, which therefore scores the averaged weights
    x; a model with BatchNorm gets its running statistics recomputed at x first
    (:data:`BN_BATCHES` training batches forwarded in train mode under ``no_grad``, every RNG
    given back its state). ``fit`` returns with the optimizer in eval mode: the model holds
    x, ready to evaluate or save; call ``optimizer.train()`` before training it further. A
    schedule other than a constant is applied on top, as its docs allow, with a caveat in
    ``history.caveats``.

    >>> history = fit(model, opt, train, nn.CrossEntropyLoss(), epochs=2, progress=False,
    ...               schedule=schedules.one_cycle(0.1, 2 * len(train)), val_loader=val)
    >>> [e["epoch"] for e in history.epochs], sorted(history.epochs[-1])
    ([1, 2], ['accuracy', 'epoch', 'train_loss', 'val_loss'])
    >>> history.stop_reason
    'completed'
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1 (got {epochs!r})")
    if criterion is None and step_fn is None:
        raise ValueError("pass criterion (loss = criterion(model(x), y)) or step_fn(model, batch)")
    if criterion is not None and step_fn is not None:
        raise ValueError("pass criterion or step_fn, not both: step_fn computes the loss itself")
    metric_fns = resolve_metrics(metrics, step_fn)
    if _metric_name(metric) in metric_fns:
        raise ValueError(f"metric and metrics both name {_metric_name(metric)!r}; rename one")
    if metric is not None and val_loader is None:
        raise ValueError("metric is computed on val_loader: pass val_loader")
    length = loader_length(train_loader)
    if length == 0:
        raise ValueError("train_loader is empty (len 0); give it at least one batch")
    if device is not None:
        model.to(device)
    first = next(iter(model.parameters()), None)
    dev = first.device if first is not None else torch.device("cpu")
    total = epochs * length if length is not None else None
    _check_length(schedule, total, epochs)  # before to_torch writes the group LRs
    scheduler, takes_reports = _scheduler(optimizer, schedule)
    if takes_reports and val_loader is None:
        raise ValueError("reduce-on-plateau needs val_loader: it is fed the val loss each epoch")

    step = step_fn if step_fn is not None else default_step(criterion)  # type: ignore[arg-type]
    loaders = LoaderRng([train_loader], ["train_loader"])
    if seed is not None:
        loaders.seed(seed)

    from tqdm.auto import tqdm

    history = History(caveats=list(loaders.caveats) if seed is not None else [])
    schedule_free = is_schedule_free(optimizer)
    if schedule_free and not _is_constant(schedule):
        history.caveats.append(_schedule_free_caveat(schedule))
    started = time.perf_counter()
    model.train()
    with (
        tqdm(total=total, desc="training", disable=not progress, leave=False) as bar,
        FitLog(loggers, _fit_params(optimizer, schedule, epochs, seed)) as track,
        _restoring(loaders, seed is not None),
    ):
        for epoch in range(1, epochs + 1):
            losses = 0.0
            steps = 0
            if schedule_free:
                getattr(optimizer, "train")()  # noqa: B009 (its weights to y, to take steps)
            for raw in train_loader:
                lr = max(float(g["lr"]) for g in optimizer.param_groups)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_value(step(model, to_device(raw, dev)))
                value = float(loss.detach())
                if not math.isfinite(value):
                    history.diverged = history.stopped_early = True
                    history.stop_reason = (
                        f"diverged: non-finite loss ({value}) at step {len(history.step_loss)} "
                        f"(epoch {epoch}, lr={lr:.3g})"
                    )
                    break
                check_trainable(loss)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                history.step_lr.append(lr)
                history.step_loss.append(value)
                track.step(len(history.step_loss) - 1, lr, value)
                losses += value
                steps += 1
                bar.update(1)
                if steps % 20 == 0:
                    bar.set_postfix(epoch=epoch, loss=f"{value:.4g}", lr=f"{lr:.2e}", refresh=False)
            if history.diverged:
                break
            if steps == 0:
                raise ValueError("train_loader yielded no batches; give it at least one batch")
            summary: dict[str, float] = {"epoch": epoch, "train_loss": losses / steps}
            if schedule_free and (val_loader is not None or epoch == epochs):
                _to_average(model, optimizer, train_loader, step, dev, loaders)
            if val_loader is not None:
                summary.update(
                    evaluate(model, val_loader, step, metric_fns, criterion, dev, metric)
                )
                if takes_reports and isinstance(scheduler, ScheduleLR):
                    scheduler.report(summary["val_loss"])
            history.epochs.append(summary)
            track.epoch(summary)
            history.epoch_wall_s.append(time.perf_counter() - started)
            stop = next((cb for cb in callbacks if cb(history)), None)
            if stop is not None:
                history.stopped_early = True
                history.stop_reason = f"stopped by callback {getattr(stop, '__name__', stop)!s}"
                break
        if schedule_free and _in_train_mode(optimizer):
            _to_average(model, optimizer, train_loader, step, dev, loaders)
    history.wall_s = time.perf_counter() - started
    return history
