"""Train K copies of a model with K learning rates (and seeds) as one batched computation.

``fit_many`` stacks the members' parameters (``torch.func.stack_module_state``), computes
every member's loss and gradients with one ``vmap(grad_and_value(functional_call))`` per
batch, and updates all members at once with the vectorized optimizers below, which follow
``torch.optim``'s update rules exactly (same defaults, same bias corrections). The LR is a
tensor of shape ``[K]`` broadcast into the update, so each member follows its own schedule.

On a GPU this turns K small runs into about the cost of one until the device is busy; on a
CPU the arithmetic already dominates, so use it there only for its exactness and
convenience (``benchmarks/bench_vectorized.py`` measures both). The reference twin is plain
``lrkit.fit`` with ``torch.optim``: the tests hold the two equal member by member.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lrkit._batched import VectorizedOptimizer, check_vectorizable
from lrkit._steps import seed_all, to_device
from lrkit.schedules import Schedule, for_run
from lrkit.tasks import OPTIMIZERS
from lrkit.train import METRICS, History

__all__ = ["VectorizedOptimizer", "check_vectorizable", "fit_many"]


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


def fit_many(
    make_model: Callable[[int], nn.Module],
    train_loader: Iterable[Any] | None,
    criterion: Callable[..., Tensor],
    *,
    optimizer: str = "sgd",
    lrs: Sequence[float],
    seeds: Sequence[int] = (0,),
    epochs: int = 1,
    schedule: str | Callable[[float], Schedule] | None = None,
    val_loader: Iterable[Any] | None = None,
    metrics: Sequence[str] = ("accuracy",),
    device: str | torch.device | None = None,
    seed: int | None = None,
    progress: bool = True,
    member_loaders: Sequence[Iterable[Any]] | None = None,
    strategy: str = "auto",
    compile: bool = False,
    **optimizer_kwargs: Any,
) -> list[History]:
    """Train one member per (lr, seed); one :class:`History` each.

    ``make_model(seed)`` builds a member. ``lrs`` and ``seeds`` are zipped (a length-1 one is
    repeated). ``train_loader`` is shared by all members; or pass ``train_loader=None`` and
    ``member_loaders``, one loader per member (each with its own data order, batched with
    vmap; all of the same length).
    ``schedule``: a bare name (``constant``, ``cosine``, ``one_cycle``, ``wsd``,
    ``warmup_cosine``, ``linear``) filled with each member's LR and the run's length, or a
    function ``lr -> Schedule``. ``optimizer_kwargs`` use torch.optim's names. A member whose
    loss turns NaN/inf is frozen and reported diverged; the others go on untouched. ``seed``
    seeds the global RNG once before training, as :func:`lrkit.fit` does.

    ``strategy``: ``"vmap"`` (one batched computation), ``"loop"`` (the members one after
    another with ``fit`` and torch.optim: the reference twin) or ``"auto"``: vmap on CUDA,
    loop on a CPU, where batching was measured 0.4–0.85× as fast as plain runs
    (``benchmarks/bench_vectorized.py``), so the CPU path is never slower than serial.
    ``compile=True`` wraps the batched step in ``torch.compile``: on a GPU the eager vmap
    step is bound by Python (~5 ms whatever K), compiled it takes less than half; the
    compilation itself costs seconds once per call, so it pays on long runs.
    """
    if strategy not in ("auto", "vmap", "loop"):
        raise ValueError(f"strategy must be 'auto', 'vmap' or 'loop' (got {strategy!r})")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1 (got {epochs!r})")
    lrs, seeds = _broadcast(lrs, seeds)
    for lr in lrs:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"every lr must be a finite number > 0 (got {lr!r})")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; built in: {', '.join(METRICS)}")
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
    momentum_sched = scheds[0].momentum_schedule()

    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    members = [make_model(s) for s in seeds]
    for m in members:
        check_vectorizable(m)
    dev = torch.device(device) if device is not None else next(members[0].parameters()).device
    VectorizedOptimizer(optimizer, {}, **optimizer_kwargs)  # validates the options up front
    if strategy == "loop" or (strategy == "auto" and dev.type != "cuda"):
        return _loop(members, loaders, criterion, optimizer, scheds, epochs, val_loader,
                     metrics, dev, seed, optimizer_kwargs)  # fmt: skip
    members = [m.to(dev).train() for m in members]
    params, buffers = stack_module_state(members)
    params = {k: v.detach() for k, v in params.items()}
    base = copy.deepcopy(members[0]).to("meta")
    opt = VectorizedOptimizer(optimizer, params, **optimizer_kwargs)
    params = opt.params  # views into the optimizer's flat buffer

    def member_loss(
        p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, y: Tensor
    ) -> tuple[Tensor, Tensor]:
        out = functional_call(base, (p, b), (x,))
        return criterion(out, y), out

    data_dims = 0 if per_member else None
    train_step = vmap(
        grad_and_value(member_loss, has_aux=True), in_dims=(0, 0, data_dims, data_dims)
    )
    if compile:
        train_step = torch.compile(train_step)
    forward = vmap(member_loss, in_dims=(0, 0, None, None))
    # float64 whatever the model's dtype: the LR is recorded exactly as the schedule gives it
    lr_table = torch.tensor([[s.lr_at(t) for s in scheds] for t in range(epochs * length)],
                            dtype=torch.float64, device=dev)  # fmt: skip
    momenta = (
        [momentum_sched.lr_at(t) for t in range(epochs * length)]
        if momentum_sched is not None
        else None
    )
    active = torch.ones(k, dtype=torch.bool, device=dev)
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
            losses = torch.empty(length, k, dtype=torch.float64, device=dev)
            first = t
            for i, raw in enumerate(_batches(loaders)):
                x, y = to_device(raw, dev)
                base.train()
                try:
                    grads, (loss, _) = train_step(params, buffers, x, y)
                except RuntimeError as exc:
                    raise ValueError(
                        f"this model cannot be vectorized ({exc}); use executor='serial'"
                    ) from exc
                loss = loss.detach()
                losses[i] = loss
                active &= torch.isfinite(loss)
                opt.step(grads, lr_table[t], active, None if momenta is None else momenta[t])
                t += 1
                bar.update(1)
            for member, column in enumerate(losses.T.tolist()):
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
            summaries = _evaluate(forward, base, params, buffers, val_loader, metrics, dev, k)
            for member, h in enumerate(histories):
                if diverged_at[member] is not None:
                    continue
                steps = h.step_loss[-length:]
                summary: dict[str, float] = {"epoch": epoch, "train_loss": sum(steps) / length}
                if summaries is not None:
                    summary.update({name: v[member] for name, v in summaries.items()})
                h.epochs.append(summary)
                h.epoch_wall_s.append(time.perf_counter() - started)
            if not bool(active.any()):
                break
    wall = time.perf_counter() - started
    for h in histories:
        h.wall_s = wall
    return histories


def _loop(
    members: list[nn.Module],
    loaders: list[Iterable[Any]],
    criterion: Callable[..., Tensor],
    optimizer: str,
    scheds: list[Schedule],
    epochs: int,
    val_loader: Iterable[Any] | None,
    metrics: Sequence[str],
    dev: torch.device,
    seed: int | None,
    options: dict[str, Any],
) -> list[History]:
    """The members one after another: plain ``fit`` with the torch.optim optimizer.

    A shared loader is read once per epoch and replayed to every member, so that all see the
    same batches, as in the batched computation.
    """
    from lrkit.train import fit

    shared = [list(loaders[0]) for _ in range(epochs)] if len(loaders) == 1 else None
    histories = []
    for i, (model, schedule) in enumerate(zip(members, scheds, strict=True)):
        opt = OPTIMIZERS[optimizer](model.to(dev).parameters(), lr=schedule(0), **options)
        histories.append(fit(
            model, opt, _Replay(shared) if shared is not None else loaders[i], criterion, epochs,
            schedule=schedule, val_loader=val_loader, metrics=metrics, seed=seed,
            progress=False,
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


def _batches(loaders: list[Iterable[Any]]) -> Iterable[Any]:
    """The shared loader's batches, or the members' batches stacked on a new first axis."""
    if len(loaders) == 1:
        yield from loaders[0]
        return
    for batch in zip(*loaders, strict=True):
        yield tuple(torch.stack(parts) for parts in zip(*batch, strict=True))


def _evaluate(
    forward: Callable[..., tuple[Tensor, Tensor]],
    base: nn.Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    loader: Iterable[Any] | None,
    metrics: Sequence[str],
    dev: torch.device,
    k: int,
) -> dict[str, list[float]] | None:
    """Mean val loss and metrics of every member (sums over samples, like ``evaluate``)."""
    if loader is None:
        return None
    base.eval()
    total = torch.zeros(k, dtype=torch.float64, device=dev)
    sums = {m: torch.zeros(k, dtype=torch.float64, device=dev) for m in metrics}
    count = 0
    with torch.no_grad():
        for raw in loader:
            x, y = to_device(raw, dev)
            loss, out = forward(params, buffers, x, y)
            n = len(y)
            total += loss.double() * n
            for name in metrics:
                sums[name] += torch.stack([METRICS[name](o, y) for o in out]).double()
            count += n
    base.train()
    out_dict = {"val_loss": (total / count).tolist()}
    out_dict.update({name: (s / count).tolist() for name, s in sums.items()})
    return out_dict
