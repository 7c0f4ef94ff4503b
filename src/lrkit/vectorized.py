"""Train K copies of a model with K learning rates (and seeds) as one batched computation.

``fit_many`` hands the members to the batched engine (:mod:`lrkit._engine`): stacked
parameters, one ``vmap(grad_and_value(functional_call))`` per batch, and the batched twin of
the ``torch.optim`` optimizer (:mod:`lrkit.optimizers`: same update rules, same defaults,
same bias corrections). The LR is a tensor of shape ``[K]`` broadcast into the update, so
each member follows its own schedule.

On a GPU this turns K small runs into about the cost of one until the device is busy; on a
CPU the arithmetic already dominates, so use it there only for its exactness and
convenience (``benchmarks/bench_vectorized.py`` measures both). The reference twin is plain
``lrkit.fit`` with ``torch.optim`` (``strategy="loop"``): the tests hold the two equal
member by member.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lrkit._engine import BatchedModel, stack_batches
from lrkit._steps import StepFn, default_step, loss_value, seed_all, to_device
from lrkit.optimizers import (
    OPTIMIZERS,
    BatchedOptimizer,
    OptimizerFactory,
    batched_twin,
    check_batched,
    check_name,
)
from lrkit.schedules import Schedule, for_run
from lrkit.train import History, Metric, resolve_metrics

__all__ = ["fit_many"]

_FACTORY_FIX = "pass strategy='loop', or a factory that builds SGD, Adam, AdamW or NAdam"


def _broadcast(lrs: Sequence[float], seeds: Sequence[int]) -> tuple[list[float], list[int]]:
    lrs, seeds = list(lrs), list(seeds)
    k = max(len(lrs), len(seeds))
    if not lrs or not seeds or len(lrs) not in (1, k) or len(seeds) not in (1, k):
        raise ValueError(
            f"lrs and seeds must have the same length or length 1 (got {len(lrs)} and {len(seeds)})"
        )
    return lrs * (k // len(lrs)), seeds * (k // len(seeds))


def _schedules(
    schedule: str | Callable[[float], Schedule] | None, lrs: list[float], total_steps: int
) -> list[Schedule]:
    if schedule is None:
        return [for_run("constant", lr, total_steps) for lr in lrs]
    if isinstance(schedule, str):
        return [for_run(schedule, lr, total_steps) for lr in lrs]
    if callable(schedule) and not isinstance(schedule, Schedule):
        return [schedule(lr) for lr in lrs]
    raise TypeError(
        "schedule must be a bare name ('constant', 'cosine', 'one_cycle', ...) or a function "
        "lr -> Schedule, so that each member gets its own LR"
    )


def _twin(
    optimizer: str | OptimizerFactory, options: dict[str, Any], strategy: str
) -> tuple[str, dict[str, Any]] | None:
    """The batched twin's name and options, or ``None`` when only the loop can run it."""
    if isinstance(optimizer, str):
        check_batched(
            check_name(optimizer), "fit_many",
            "train one lrkit.fit (or Task.fit) per member, or run a sweep with "
            "executor='processes'",
        )  # fmt: skip
        BatchedOptimizer(optimizer, {}, **options)  # validates the options up front
        return optimizer, options
    if not callable(optimizer):
        raise ValueError(
            f"optimizer must be one of {', '.join(OPTIMIZERS)} or a factory (params, lr) -> "
            f"torch.optim.Optimizer (got {optimizer!r})"
        )
    if options:
        raise ValueError(
            f"optimizer options ({', '.join(options)}) go into the factory when optimizer is "
            "a factory: lambda params, lr: torch.optim.SGD(params, lr, momentum=0.9)"
        )
    probe = optimizer([torch.zeros(1, requires_grad=True)], 1.0)
    try:
        return batched_twin(probe, who="fit_many's batched strategy", fix=_FACTORY_FIX)
    except ValueError:
        if strategy == "vmap":
            raise
        return None


def fit_many(
    make_model: Callable[[int], nn.Module],
    train_loader: Iterable[Any] | None,
    criterion: Callable[..., Tensor] | None = None,
    epochs: int = 1,
    *,
    optimizer: str | OptimizerFactory = "sgd",
    lrs: Sequence[float],
    seeds: Sequence[int] = (0,),
    schedule: str | Callable[[float], Schedule] | None = None,
    val_loader: Iterable[Any] | None = None,
    metrics: Sequence[str | Metric] | None = None,
    step_fn: StepFn | None = None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    progress: bool = True,
    member_loaders: Sequence[Iterable[Any]] | None = None,
    strategy: str = "auto",
    compile: bool = False,
    prune: Callable[[int, Sequence[History]], Collection[int]] | None = None,
    **optimizer_kwargs: Any,
) -> list[History]:
    """Train one member per (lr, seed), as :func:`lrkit.fit` trains one; a :class:`History`
    each.

    The arguments are ``fit``'s, with a model factory for the model and names or factories
    for the optimizer and schedule, since each member needs its own:

    - ``make_model(seed)`` builds a member. ``lrs`` and ``seeds`` are zipped (a length-1 one
      is repeated).
    - ``train_loader`` is shared by all members; or pass ``train_loader=None`` and
      ``member_loaders``, one loader per member (each with its own data order, batched with
      vmap; all of the same length).
    - ``criterion`` (``loss = criterion(model(x), y)``) or ``step_fn(model, batch) -> loss``.
    - ``optimizer``: a name of :data:`lrkit.optimizers.OPTIMIZERS` with ``optimizer_kwargs``
      in torch.optim's names, or a factory ``(params, lr) -> torch.optim.Optimizer``. The
      batched strategy runs a factory's SGD/Adam/AdamW/NAdam (one param group) through its
      batched twin; any other optimizer needs the loop (``strategy="auto"`` falls back to
      it, ``"vmap"`` raises).
    - ``schedule``: a bare name (``constant``, ``cosine``, ``one_cycle``, ``wsd``,
      ``warmup_cosine``, ``linear``) filled with each member's LR and the run's length, or a
      function ``lr -> Schedule``.
    - ``metrics`` (default ``("accuracy",)``, none with ``step_fn``) on ``val_loader`` after
      every epoch; ``seed`` seeds the global RNG once before training, as ``fit`` does.

    A member whose loss turns NaN/inf is frozen and reported diverged; the others go on
    untouched. At the end the modules ``make_model`` built hold their member's final
    weights (the loop trains them in place; the batched computation copies its state back).

    ``prune(epoch, histories)`` (batched strategy only) is called after every epoch's
    validation with every member's history and returns the indices of members to stop
    there: they are recorded as stopped (``stop_reason`` ``"pruned after epoch N"``) and
    removed from the batched computation together with the diverged ones, so the later
    epochs cost only the members left. Without random operations the members left compute
    exactly what they would without pruning (up to the order of floating-point sums in
    batched kernels); with dropout they do not: vmap draws one random tensor for the members
    present, so after a repack each member's later masks differ from an unpruned run's
    (equally random, not the same numbers).

    ``strategy``: ``"vmap"`` (one batched computation), ``"loop"`` (the members one after
    another with ``fit`` and torch.optim: the reference twin) or ``"auto"``: vmap on CUDA,
    loop on a CPU, where batching was measured 0.4–0.85× as fast as plain runs
    (``benchmarks/bench_vectorized.py``), so the CPU path is never slower than serial.
    ``compile=True`` wraps the batched step in ``torch.compile``: on a GPU the eager vmap
    step is bound by Python (~5 ms whatever K), compiled it takes less than half; the
    compilation itself costs seconds once per call, so it pays on long runs.

    Without random layers the batched members equal K plain runs (bit for bit up to the
    order of floating-point sums; the tests hold float64 runs equal to 1e-12). Random layers
    (dropout) run with vmap's ``randomness="different"``: every member draws its own masks
    from the global RNG, all members' draws of a step at once, so a member's masks are not
    those of its plain run. What holds instead: the same ``seed`` gives the same histories,
    members draw independent masks, and in eval mode (the validation pass) or with
    ``p=0`` nothing is drawn and the members equal plain runs again.
    """
    if strategy not in ("auto", "vmap", "loop"):
        raise ValueError(f"strategy must be 'auto', 'vmap' or 'loop' (got {strategy!r})")
    if prune is not None and strategy != "vmap":
        raise ValueError(
            f"prune needs the batched computation (strategy='vmap'; got {strategy!r}): "
            "members trained one after another cannot be compared at an epoch"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1 (got {epochs!r})")
    if (criterion is None) == (step_fn is None):
        raise ValueError(
            "pass criterion (loss = criterion(model(x), y)) or step_fn(model, batch) -> loss, "
            "not both"
        )
    lrs, seeds = _broadcast(lrs, seeds)
    for lr in lrs:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"every lr must be a finite number > 0 (got {lr!r})")
    metric_fns = resolve_metrics(metrics, step_fn)
    k = len(lrs)
    per_member = member_loaders is not None
    if per_member == (train_loader is not None):
        raise ValueError("pass train_loader (shared) or member_loaders (one per member), not both")
    loaders: list[Iterable[Any]] = (
        list(member_loaders) if member_loaders is not None else [train_loader]  # type: ignore[list-item]
    )
    if per_member and len(loaders) != k:
        raise ValueError(f"got {len(loaders)} member_loaders for {k} members")
    lengths = {len(ld) for ld in loaders}  # type: ignore[arg-type]
    if len(lengths) != 1:
        raise ValueError(f"the per-member train loaders differ in length: {sorted(lengths)}")
    length = lengths.pop()
    if length == 0:
        raise ValueError("train_loader is empty (len 0); give it at least one batch")
    scheds = _schedules(schedule, lrs, epochs * length)
    twin = _twin(optimizer, optimizer_kwargs, strategy)
    step = step_fn if step_fn is not None else default_step(criterion)  # type: ignore[arg-type]

    members = [make_model(s) for s in seeds]
    if len({id(m) for m in members}) != k:
        raise ValueError(
            "make_model returned the same module object more than once; it must build a new "
            "model per call (e.g. lambda seed: build(seed), not lambda seed: model)"
        )
    dev = torch.device(device) if device is not None else next(members[0].parameters()).device
    if twin is None or strategy == "loop" or (strategy == "auto" and dev.type != "cuda"):
        return _loop(members, loaders, criterion, step_fn, optimizer, optimizer_kwargs, scheds,
                     epochs, val_loader, metrics, dev, seed)  # fmt: skip
    members = [m.to(dev).train() for m in members]
    batched = BatchedModel(members, step, *twin, shared_data=not per_member,
                           randomness="different", compile=compile)  # fmt: skip
    # float64 whatever the model's dtype: the LR is recorded exactly as the schedule gives it
    lr_table = torch.tensor([[s.lr_at(t) for s in scheds] for t in range(epochs * length)],
                            dtype=torch.float64, device=dev)  # fmt: skip
    momentum_sched = scheds[0].momentum_schedule()
    momenta = (
        [momentum_sched.lr_at(t) for t in range(epochs * length)]
        if momentum_sched is not None
        else None
    )
    active = torch.ones(k, dtype=torch.bool, device=dev)
    alive = list(range(k))  # the member of each row of the batched computation
    histories = [History() for _ in range(k)]
    diverged_at: list[int | None] = [None] * k
    if seed is not None:
        seed_all(seed)

    from tqdm.auto import tqdm

    started = time.perf_counter()
    t = 0
    with tqdm(total=epochs * length, desc=f"training {k} members", disable=not progress,
              leave=False) as bar:  # fmt: skip
        for epoch in range(1, epochs + 1):
            losses = torch.empty(length, len(alive), dtype=torch.float64, device=dev)
            rows = torch.tensor(alive, dtype=torch.long, device=dev)
            first = t
            live = [loaders[m] for m in alive] if per_member else loaders
            for i, raw in enumerate(_batches(live, per_member)):
                try:
                    grads, loss = batched.grads(to_device(raw, dev))
                except RuntimeError as exc:
                    raise ValueError(
                        f"this model cannot be vectorized ({exc}); use executor='serial'"
                    ) from exc
                losses[i] = loss
                active &= torch.isfinite(loss)
                lr_rows = lr_table[t] if len(alive) == k else lr_table[t, rows]
                batched.step(grads, lr_rows, active, None if momenta is None else momenta[t])
                t += 1
                bar.update(1)
            for member, column in zip(alive, losses.T.tolist(), strict=True):
                if diverged_at[member] is not None:
                    continue
                h = histories[member]
                for j, value in enumerate(column):
                    if not math.isfinite(value):
                        diverged_at[member] = first + j
                        h.diverged = h.stopped_early = True
                        h.stop_reason = (
                            f"diverged: non-finite loss ({value}) at step {first + j} "
                            f"(epoch {epoch}, lr={float(lr_table[first + j, member]):.3g})"
                        )
                        break
                    h.step_lr.append(float(lr_table[first + j, member]))
                    h.step_loss.append(value)
            summaries = _evaluate(batched, val_loader, criterion, step, metric_fns, dev, len(alive))
            for row, member in enumerate(alive):
                h = histories[member]
                if diverged_at[member] is not None:
                    continue
                steps = h.step_loss[-length:]
                summary: dict[str, float] = {"epoch": epoch, "train_loss": sum(steps) / length}
                if summaries is not None:
                    summary.update({name: v[row] for name, v in summaries.items()})
                h.epochs.append(summary)
                h.epoch_wall_s.append(time.perf_counter() - started)
            if prune is not None and epoch < epochs:
                stop = {int(m) for m in prune(epoch, histories)}
                kept = []
                for row, member in enumerate(alive):
                    if member in stop or diverged_at[member] is not None:
                        batched.write_to(row, members[member])
                        if diverged_at[member] is None:
                            histories[member].stopped_early = True
                            histories[member].stop_reason = f"pruned after epoch {epoch}"
                    else:
                        kept.append(row)
                if len(kept) < len(alive):
                    alive = [alive[row] for row in kept]
                    active = active[kept]
                    if kept:
                        batched.keep(kept)
            if not alive or not bool(active.any()):
                break
    for row, member in enumerate(alive):
        batched.write_to(row, members[member])
    wall = time.perf_counter() - started
    for h in histories:
        h.wall_s = wall
    return histories


def _loop(
    members: list[nn.Module],
    loaders: list[Iterable[Any]],
    criterion: Callable[..., Tensor] | None,
    step_fn: StepFn | None,
    optimizer: str | OptimizerFactory,
    options: dict[str, Any],
    scheds: list[Schedule],
    epochs: int,
    val_loader: Iterable[Any] | None,
    metrics: Sequence[str | Metric] | None,
    dev: torch.device,
    seed: int | None,
) -> list[History]:
    """The members one after another: plain ``fit`` with the torch.optim optimizer.

    A shared loader is read once per epoch and replayed to every member, so that all see the
    same batches, as in the batched computation.
    """
    from lrkit.train import fit

    shared = [list(loaders[0]) for _ in range(epochs)] if len(loaders) == 1 else None
    histories = []
    for i, (model, schedule) in enumerate(zip(members, scheds, strict=True)):
        params = model.to(dev).parameters()
        opt = (
            OPTIMIZERS[optimizer](params, lr=schedule(0), **options)
            if isinstance(optimizer, str)
            else optimizer(params, schedule(0))
        )
        histories.append(fit(
            model, opt, _Replay(shared) if shared is not None else loaders[i], criterion, epochs,
            schedule=schedule, val_loader=val_loader, metrics=metrics, step_fn=step_fn,
            seed=seed, progress=False,
        ))  # fmt: skip
    return histories


class _Replay:
    """Iterates the stored batches of epoch 1, then of epoch 2, ... (one list per epoch)."""

    def __init__(self, epochs: list[list[Any]]) -> None:
        self.epochs, self.next = epochs, 0

    def __len__(self) -> int:
        return len(self.epochs[0])

    def __iter__(self) -> Any:
        batches = self.epochs[min(self.next, len(self.epochs) - 1)]
        self.next += 1
        return iter(batches)


def _batches(loaders: list[Iterable[Any]], per_member: bool) -> Iterable[Any]:
    """The shared loader's batches, or the members' batches stacked on a new first axis
    (also for a single member: its batches then carry a first axis of size 1)."""
    if not per_member:
        yield from loaders[0]
        return
    for batch in zip(*loaders, strict=True):
        yield stack_batches(batch)


def _evaluate(
    batched: BatchedModel,
    loader: Iterable[Any] | None,
    criterion: Callable[..., Tensor] | None,
    step: StepFn,
    metrics: dict[str, Metric],
    dev: torch.device,
    k: int,
) -> dict[str, list[float]] | None:
    """Mean val loss and metrics of every member (weighted by batch size, like ``evaluate``)."""
    if loader is None:
        return None

    def outputs(model: nn.Module, batch: Any) -> tuple[Tensor, Tensor]:
        x, y = batch
        out = model(x)
        return criterion(out, y), out  # type: ignore[misc]

    def loss_only(model: nn.Module, batch: Any) -> Tensor:
        return loss_value(step(model, batch))

    total = torch.zeros(k, dtype=torch.float64, device=dev)
    sums = {m: torch.zeros(k, dtype=torch.float64, device=dev) for m in metrics}
    count = 0
    for raw in loader:
        batch = to_device(raw, dev)
        if metrics and criterion is not None:
            loss, out = batched.evaluate(outputs, batch)
            y = batch[1]
            n = len(y)
            for name, fn in metrics.items():
                sums[name] += torch.stack([fn(o, y) for o in out]).double()
        else:
            loss = batched.evaluate(loss_only, batch)
            n = len(batch[0]) if isinstance(batch, (list, tuple)) else 1
        total += loss.double() * n
        count += n
    if count == 0:
        raise ValueError("val_loader yielded no batches; give it at least one batch")
    out_dict = {"val_loss": (total / count).tolist()}
    out_dict.update({name: (s / count).tolist() for name, s in sums.items()})
    return out_dict
