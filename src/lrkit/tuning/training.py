"""How ``lrkit.tune`` trains its candidates: the per-tune state (``_Problem``, ``_Round``) and
the three training paths — batched (vmap probe, memory chunks), serial, and the sweep
executors — each pruning at the rungs where it can and recording into the store."""

from __future__ import annotations

import contextlib
import functools
import math
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lrkit._loaders import LoaderRng
from lrkit._steps import StepFn
from lrkit.optimizers import OPTIMIZERS
from lrkit.schedules import for_run
from lrkit.sweeps.spec import RunConfig
from lrkit.sweeps.store import RunRecord, Store
from lrkit.tasks import Task
from lrkit.train import History, fit
from lrkit.tuning.prune import error_of, rungs, to_stop
from lrkit.tuning.result import Candidate

Member = tuple[float, int]  # (lr, seed)


@dataclass
class _Problem:
    """What is trained, whatever the caller handed in (a Task, a task name, a factory)."""

    name: str
    make_model: Callable[[int], nn.Module]
    loader: Callable[[int], Iterable[Any]]
    shared: Iterable[Any] | None  # the user's one train loader, or None (a Task: per seed)
    val_loader: Iterable[Any]
    criterion: Callable[..., Tensor] | None
    step_fn: StepFn | None
    metric: str
    optimizer: str
    options: dict[str, Any]
    task: Task | None = None
    importable: bool = False  # a task name worker processes can resolve themselves

    @property
    def metrics(self) -> tuple[str, ...]:
        return () if self.metric == "val_loss" else (self.metric,)


@dataclass
class _Round:
    """Training state of one tune across its rounds: what is known per member."""

    problem: _Problem
    schedule: str
    epochs: int
    seeds: tuple[int, ...]
    prune: bool
    db: Store | None
    progress: bool
    epoch_errors: dict[Member, list[float]] = field(default_factory=dict)
    candidates: dict[Member, Candidate] = field(default_factory=dict)
    models: dict[Member, nn.Module] = field(default_factory=dict)
    run_ids: dict[Member, str] = field(default_factory=dict)
    cost: float = 0.0
    resumed: int = 0

    @functools.cached_property
    def layout(self) -> tuple[torch.device, int, list[tuple[str, list[int]]]]:
        """Read off one build of the model: the device the batched pass runs on, how many
        members fit in one pass, and the parameters' names and shapes (the store key)."""
        from lrkit.sweeps.executors import max_members_for

        model = self.problem.make_model(self.seeds[0])
        device = _device(model)
        shapes = [(name, list(p.shape)) for name, p in model.named_parameters()]
        return device, max_members_for(model, device), shapes

    def rung_errors(self, epoch: int, seeds: Sequence[int]) -> dict[float, float]:
        """``{lr: mean error over seeds at epoch}`` over members that reached ``epoch``;
        ``inf`` for an LR with a diverged seed."""
        out: dict[float, list[float]] = {}
        for (lr, seed), errors in self.epoch_errors.items():
            if seed not in seeds:
                continue
            c = self.candidates.get((lr, seed))
            if c is not None and c.diverged:
                out.setdefault(lr, []).append(math.inf)
            elif len(errors) >= epoch:
                out.setdefault(lr, []).append(errors[epoch - 1])
        return {lr: sum(v) / len(v) for lr, v in out.items()}

    def record(self, member: Member, history: History, round_: int, cost: float,
               model: nn.Module | None) -> None:  # fmt: skip
        """Keep a trained member's outcome (and write it to the store)."""
        lr, seed = member
        metric = self.problem.metric
        errors = [error_of(metric, e[metric]) for e in history.epochs if metric in e]
        self.epoch_errors[member] = errors
        pruned = history.stop_reason.startswith("pruned")
        last = history.epochs[-1].get(metric) if history.epochs and not history.diverged else None
        stopped = min(self.epochs, len(history.epochs) + (1 if history.diverged else 0))
        self.candidates[member] = Candidate(lr, seed, last, stopped, history.diverged, pruned,
                                            round_, self.run_ids.get(member))  # fmt: skip
        self.cost += cost
        if model is not None and not pruned and not history.diverged:
            self.models[member] = model
        self._forget_losers()
        if self.db is not None and member in self.run_ids:
            self.db.finish(self.run_ids[member], {"id": self.run_ids[member],
                           "history": history.to_dict(), "host": socket.gethostname()})  # fmt: skip

    def mean_scores(self) -> dict[float, float]:
        """``{lr: seed-mean metric}``, signed so that higher is better, of the LRs whose every
        seed ran the whole budget: the LRs a tune can choose."""
        sign = 1 if self.problem.metric == "accuracy" else -1
        out: dict[float, float] = {}
        for lr in dict.fromkeys(lr for lr, _ in self.candidates):
            runs = [self.candidates.get((lr, s)) for s in self.seeds]
            metrics = [c.metric for c in runs if c is not None and c.completed]
            if len(metrics) == len(runs) and None not in metrics:
                out[lr] = sign * sum(metrics) / len(metrics)  # type: ignore[arg-type]
        return out

    def _forget_losers(self) -> None:
        """Drop the trained models of LRs that can no longer be chosen: one with a seed that
        was pruned or diverged, or whose seeds all finished with a mean strictly worse than
        another LR's (so memory holds about one LR's models, not K × seeds)."""
        scores = self.mean_scores()
        best = max(scores.values(), default=-math.inf)
        out = {lr for (lr, _), c in self.candidates.items() if not c.completed}
        out |= {lr for lr, score in scores.items() if score < best}
        for member in [m for m in self.models if m[0] in out]:
            del self.models[member]

    def load(self, member: Member, record: RunRecord, round_: int) -> None:
        """A member finished by an earlier call, read back from the store."""
        assert self.db is not None
        epochs = self.db.metrics(record.id, "epoch")
        values = [v for v in epochs.get(self.problem.metric, []) if v is not None]
        history = History(
            epochs=[{"epoch": i + 1, self.problem.metric: v} for i, v in enumerate(values)],
            diverged=record.diverged, stop_reason=str(record.summary.get("stop_reason", "")),
        )  # fmt: skip
        db, self.db = self.db, None  # already stored: do not write it again
        try:
            self.record(member, history, round_, 0.0, None)
        finally:
            self.db = db
        c = self.candidates[member]
        self.cost += c.stopped_at / self.epochs
        self.resumed += 1


def _device(model: nn.Module) -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else next(model.parameters()).device


def _batched_problem(problem: _Problem, state: _Round, members: int) -> str | None:
    """Why the batched pass cannot run, or None: the memory estimate leaves room for one
    member only, or vmap refuses the model on a first batch (two members, one train step and
    one validation batch, on copies; the loaders' generators are put back)."""
    from lrkit._engine import BatchedModel
    from lrkit._steps import default_step, to_device

    device, size, _ = state.layout
    if size < 2 and members > 1:
        return "the memory estimate leaves room for only one member at a time"
    step = problem.step_fn or default_step(problem.criterion)  # type: ignore[arg-type]
    rng = LoaderRng([problem.shared, problem.val_loader])
    try:
        models = [problem.make_model(s) for s in state.seeds[:1] * 2]
        batched = BatchedModel(
            [m.to(device) for m in models], step, problem.optimizer, problem.options,
            shared_data=True, randomness="different",
        )  # fmt: skip
        batch = to_device(next(iter(problem.loader(state.seeds[0]))), device)
        batched.grads(batch)
        val = to_device(next(iter(problem.val_loader)), device)
        batched.evaluate(lambda model, b: step(model, b), val)
    except Exception as exc:  # whatever vmap raises, the serial path can still train it
        return f"the batched pass (vmap) cannot run this model ({type(exc).__name__}: {exc})"
    finally:
        rng.restore()
    return None


def _train_batched(state: _Round, todo: list[Member], round_: int) -> None:
    """``todo`` in batched passes of what fits in memory, pruned at the rungs."""
    from lrkit.vectorized import fit_many

    problem = state.problem
    device, size, _ = state.layout
    checkpoints = set(rungs(state.epochs))
    # One loader shared by the members reads one data order per pass: a pass holds one seed's
    # members, so that each seed trains on its own order, as the serial path does.
    groups = ([[m for m in todo if m[1] == s] for s in state.seeds] if problem.shared is not None
              else [todo])  # fmt: skip
    chunks = [g[i : i + size] for g in groups for i in range(0, len(g), size)]
    for chunk in chunks:
        if not chunk:
            continue
        built: list[nn.Module] = []

        def make(seed: int, built: list[nn.Module] = built) -> nn.Module:
            model = problem.make_model(seed)
            built.append(model)
            return model

        def hook(epoch: int, histories: Sequence[History], chunk: list[Member] = chunk) -> set[int]:
            if epoch not in checkpoints:
                return set()
            metric = problem.metric
            for member, h in zip(chunk, histories, strict=True):
                if not h.diverged and not h.stopped_early:
                    state.epoch_errors[member] = [error_of(metric, e[metric]) for e in h.epochs]
            live = {m[0] for m, h in zip(chunk, histories, strict=True)
                    if not h.stopped_early and not h.diverged}  # fmt: skip
            stop = to_stop(state.rung_errors(epoch, state.seeds)) & live
            return {i for i, (lr, _) in enumerate(chunk) if lr in stop}

        rng = LoaderRng([problem.shared, problem.val_loader])
        if problem.shared is not None:
            rng.seed(chunk[0][1])
        try:
            histories = fit_many(
                make, problem.shared, problem.criterion, state.epochs,
                member_loaders=None if problem.shared is not None
                else [problem.loader(s) for _, s in chunk],
                optimizer=problem.optimizer, lrs=[lr for lr, _ in chunk],
                seeds=[s for _, s in chunk], schedule=state.schedule,
                val_loader=problem.val_loader, metrics=problem.metrics,
                step_fn=problem.step_fn, device=device, strategy="vmap",
                progress=state.progress, prune=hook if state.prune else None,
                **problem.options,
            )  # fmt: skip
        finally:
            rng.restore()
        for member, h, model in zip(chunk, histories, built, strict=True):
            computed = len(h.epochs) + (1 if h.diverged else 0) if state.prune else state.epochs
            state.record(member, h, round_, min(computed, state.epochs) / state.epochs, model)


def _train_serial(state: _Round, todo: list[Member], round_: int) -> None:
    """``todo`` one after another with :func:`lrkit.fit`; a run is pruned at a rung by the
    same rule, against the runs of its seed that reached that epoch."""
    problem = state.problem
    checkpoints = set(rungs(state.epochs))
    metric = problem.metric
    for member in todo:
        lr, seed = member
        loader = problem.loader(seed)
        model = problem.make_model(seed)
        schedule = for_run(state.schedule, lr, state.epochs * len(loader))  # type: ignore[arg-type]
        opt = OPTIMIZERS[problem.optimizer](model.parameters(), lr=schedule(0), **problem.options)
        pruned_at: list[int] = []

        def prune_here(
            history: History, member: Member = member, pruned_at: list[int] = pruned_at
        ) -> bool:
            epoch = len(history.epochs)
            state.epoch_errors[member] = [error_of(metric, e[metric]) for e in history.epochs]
            if not state.prune or epoch not in checkpoints:
                return False
            if member[0] in to_stop(state.rung_errors(epoch, (member[1],))):
                pruned_at.append(epoch)
                return True
            return False

        rng = LoaderRng([problem.shared, problem.val_loader])
        try:
            h = fit(model, opt, loader, problem.criterion, state.epochs, schedule=schedule,
                    val_loader=problem.val_loader, metrics=problem.metrics,
                    step_fn=problem.step_fn, seed=seed, progress=False,
                    callbacks=[prune_here])  # fmt: skip
        finally:
            rng.restore()
        if pruned_at:
            h.stop_reason = f"pruned after epoch {pruned_at[0]}"
        done = len(h.epochs) + (1 if h.diverged else 0)
        state.record(member, h, round_, min(done, state.epochs) / state.epochs, model)


def _train_executor(
    state: _Round, todo: list[Member], round_: int, executor: str, workers: int | None,
    address: str | None, caveats: list[str],
) -> None:  # fmt: skip
    """``todo`` on the sweep executors (worker processes or Ray): every run to the end."""
    from lrkit.sweeps.executors import execute
    from lrkit.sweeps.run import TaskResolver

    problem = state.problem
    if state.prune:
        caveats.append(f"executor {executor!r} trains every candidate to the end: pruning "
                       "needs executor 'vectorized' or 'serial'")  # fmt: skip
    configs = {RunConfig(problem.name, lr, state.schedule, problem.optimizer, seed, None, 5,
                         state.epochs, None, ""): (lr, seed) for lr, seed in todo}  # fmt: skip
    if state.db is not None:
        configs = {}
        for member in todo:
            record = next(r for r in state.db.runs() if r.id == state.run_ids[member])
            configs[RunConfig(**record.config)] = member
    by_id = {c.id: m for c, m in configs.items()}
    # closed on the way out, so a failed run stops the workers instead of leaving them running
    with contextlib.closing(
        execute(executor, list(configs), TaskResolver(), workers, address)
    ) as outcomes:
        for run_id, outcome in outcomes:
            if isinstance(outcome, BaseException):
                if state.db is not None:
                    state.db.fail(run_id, f"{type(outcome).__name__}: {outcome}")
                raise outcome
            h = History.from_dict(outcome["history"])
            done = len(h.epochs) + (1 if h.diverged else 0)
            state.record(by_id[run_id], h, round_, min(done, state.epochs) / state.epochs, None)
