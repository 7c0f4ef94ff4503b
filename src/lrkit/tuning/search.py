"""``lrkit.tune``: a range test, then K candidates around its suggestion trained at the full
budget (batched where the model allows), pruned by successive halving, kept in the store."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from lrkit._loaders import LoaderRng
from lrkit._steps import StepFn
from lrkit.finder import FinderResult, find_lr
from lrkit.optimizers import DEFAULTS, OPTIMIZERS
from lrkit.schedules import for_run
from lrkit.sweeps.spec import SweepSpec
from lrkit.sweeps.store import Store
from lrkit.tasks import Task, get_task
from lrkit.train import METRICS
from lrkit.tuning.interval import (
    FINDER_RUNS,
    FINDER_STEPS,
    SCHEDULE_OF,
    candidate_interval,
    doubtful,
    log_points,
    range_test_size,
)
from lrkit.tuning.prune import RULE
from lrkit.tuning.result import TuneResult
from lrkit.tuning.training import (
    _batched_problem,
    _Problem,
    _Round,
    _train_batched,
    _train_executor,
    _train_serial,
)

__all__ = ["EXECUTORS", "SCHEDULES", "tune"]

log = logging.getLogger("lrkit.tune")

SCHEDULES = tuple(SCHEDULE_OF)
"""The protocols a tune picks the (peak) LR for."""
EXECUTORS = ("auto", "vectorized", "serial", "processes", "ray")


def _problem(
    model_or_task: Any, train_loader: Iterable[Any] | None, val_loader: Iterable[Any] | None,
    criterion: Callable[..., Tensor] | None, step_fn: StepFn | None, optimizer: str | None,
    optimizer_kwargs: Mapping[str, Any] | None, metric: str | None,
) -> _Problem:  # fmt: skip
    """Check the model/task arguments and put them in one form."""
    if isinstance(model_or_task, str):
        task = get_task(model_or_task)
        return _task_problem(task, model_or_task, True, train_loader, val_loader, criterion,
                             step_fn, optimizer, optimizer_kwargs, metric)  # fmt: skip
    if isinstance(model_or_task, Task):
        return _task_problem(model_or_task, f"local:{model_or_task.name}", False, train_loader,
                             val_loader, criterion, step_fn, optimizer, optimizer_kwargs,
                             metric)  # fmt: skip
    if isinstance(model_or_task, nn.Module) or not callable(model_or_task):
        raise ValueError(
            f"model_or_task must be a factory seed -> nn.Module, a Task or a task name (got "
            f"{type(model_or_task).__name__}); every candidate needs fresh weights, so wrap "
            "the model: lambda seed: MyNet()"
        )
    if train_loader is None or val_loader is None:
        raise ValueError(
            f"train_loader and val_loader are needed with a model factory (got "
            f"train_loader={train_loader!r}, val_loader={val_loader!r}); the candidates are "
            "compared on the validation metric"
        )
    if (criterion is None) == (step_fn is None):
        raise ValueError(
            "pass criterion (loss = criterion(model(x), y)) or step_fn(model, batch) -> loss, "
            "not both"
        )
    name = optimizer or "sgd"
    _check_optimizer(name)
    chosen = metric or ("val_loss" if step_fn is not None else "accuracy")
    if chosen != "val_loss" and (chosen not in METRICS or step_fn is not None):
        valid = "'val_loss'" if step_fn is not None else f"'val_loss', {', '.join(METRICS)}"
        raise ValueError(f"metric must be one of {valid} (got {metric!r})")
    label = getattr(model_or_task, "__qualname__", type(model_or_task).__name__)
    loader = train_loader
    return _Problem(f"local:{label}", model_or_task, lambda seed: loader, train_loader,
                    val_loader, criterion, step_fn, chosen, name,
                    dict(optimizer_kwargs or {}))  # fmt: skip


def _check_optimizer(name: Any) -> None:
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {name!r}); tune trains "
            "named optimizers so that the candidates can be batched and stored"
        )
    if name not in DEFAULTS:  # prodigy, schedulefree_*: no LR for a range test to find
        raise ValueError(
            f"optimizer={name!r} is learning-rate-free: tune finds an LR with a range test, "
            "which cannot measure it (see lrkit.optimizers.check_range_test). Run it at its "
            f"default LR (Task.fit(optimizer={name!r}), or a sweep with '{name}@default' beside "
            f"the LRs tune picks), or tune one of {', '.join(DEFAULTS)}"
        )


def _task_problem(
    task: Task, name: str, importable: bool, train_loader: Any, val_loader: Any,
    criterion: Any, step_fn: Any, optimizer: str | None,
    optimizer_kwargs: Mapping[str, Any] | None, metric: str | None,
) -> _Problem:  # fmt: skip
    given = {"train_loader": train_loader, "val_loader": val_loader, "criterion": criterion,
             "step_fn": step_fn}  # fmt: skip
    extra = [k for k, v in given.items() if v is not None]
    if extra:
        raise ValueError(
            f"a Task brings its own data and loss; drop {', '.join(extra)} (or pass a model "
            "factory with loaders instead of the task)"
        )
    if metric is not None and metric != task.metric:
        raise ValueError(
            f"metric {metric!r} differs from the task's metric {task.metric!r}; leave metric "
            "unset for a Task"
        )
    name_opt = optimizer or task.optimizer
    _check_optimizer(name_opt)
    options = dict(optimizer_kwargs) if optimizer_kwargs is not None else (
        dict(task.optimizer_kwargs) if name_opt == task.optimizer else {})  # fmt: skip
    return _Problem(name, task.make_model, task.train_loader, None, task.val_loader(),
                    task.criterion, None, task.metric, name_opt, options, task,
                    importable)  # fmt: skip


def _check_int(name: str, value: Any, low: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low} (got {value!r}); {fix}")
    return value


def tune(
    model_or_task: Callable[[int], nn.Module] | Task | str,
    train_loader: Iterable[Any] | None = None,
    val_loader: Iterable[Any] | None = None,
    criterion: Callable[..., Tensor] | None = None,
    *,
    step_fn: StepFn | None = None,
    optimizer: str | None = None,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    schedule: str = "constant",
    epochs: int | None = None,
    seeds: Sequence[int] = (0,),
    k: int = 5,
    prune: bool = True,
    rounds: int = 1,
    executor: str = "auto",
    store: str | Path | None = None,
    metric: str | None = None,
    finder_runs: int | None = None,
    finder_kwargs: Mapping[str, Any] | None = None,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> TuneResult:
    """The LR a grid at the full budget would pick, for the price of a few runs.

    1. A range test (``finder_runs`` runs, :func:`lrkit.find_lr` with ``finder_kwargs``)
       gives a suggestion for ``schedule`` and its spread; the candidate interval is the
       suggestion × 10^(±w) decades, w = 0.5 + spread + 0.25 per caveat (at most 1.5), or a
       wide fallback when there is no suggestion (said in ``caveats``;
       :mod:`lrkit.tuning.interval`). ``finder_runs=None`` (the default): three runs when
       they cost at most half a full-budget run, else one (whose spread is taken as half a
       decade); when that run is doubtful (no suggestion, or two caveats) two more are
       run and the interval is the three runs'. A single run (``finder_runs=1`` too) widens
       the interval by ``UNMEASURED_SPREAD``.
    2. ``k`` LRs log-spaced in it, × ``seeds``, are trained for ``epochs`` with
       ``schedule`` (``constant``, ``one_cycle``, ``cosine``, ``warmup_cosine``: the protocol
       you will train with, the LR being its peak). ``executor``: ``"vectorized"`` (one
       batched pass with :func:`lrkit.fit_many`'s engine, in chunks that fit in memory),
       ``"serial"`` (one after another), ``"processes"``/``"ray"`` (the sweep executors; a
       task name only, no pruning) or ``"auto"``: vectorized when the model batches, else
       serial, with the reason in ``caveats``.
    3. With ``prune``, candidates that diverge or fall clearly behind at 1/4 and 1/2 of the
       budget stop there (:mod:`lrkit.tuning.prune`), and their compute is saved.
    4. ``rounds=2`` trains a second, finer set around round 1's best (or beyond it when the
       best is at the edge of the interval).

    The chosen ``lr`` is the candidate with the best seed-mean validation ``metric``
    (a Task's metric; else ``"accuracy"``, ``"mae"`` or ``"val_loss"``) among those whose
    every seed ran the whole budget. ``model_or_task``: a factory ``seed -> nn.Module`` with
    ``train_loader``, ``val_loader`` and ``criterion`` (or ``step_fn``) as for
    :func:`lrkit.fit_many`; a :class:`~lrkit.Task`; or a task name. ``optimizer``: a name
    (default ``"sgd"`` or the task's) with ``optimizer_kwargs``. With ``store`` (a
    directory, as for :func:`lrkit.sweep`) every candidate is a run of sweep
    ``tune-r<round>-<hash>``: a rerun after a crash trains only what is missing, and
    ``lrkit runs`` and the sweep report show the runs. The user's model factory, loaders
    and their generators are left as they were.

    >>> res = lrkit.tune(make_model, train, val, nn.CrossEntropyLoss(), epochs=3, k=3,
    ...                  progress=False)                                # doctest: +SKIP
    >>> res.lr, res.cost                                                # doctest: +SKIP
    """
    started = time.perf_counter()
    problem = _problem(model_or_task, train_loader, val_loader, criterion, step_fn, optimizer,
                       optimizer_kwargs, metric)  # fmt: skip
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} (got {schedule!r})")
    if epochs is None:
        if problem.task is None:
            raise ValueError("epochs is needed with a model factory: the full training budget")
        epochs = problem.task.epochs
    _check_int("epochs", epochs, 1, "pass the number of epochs you will train for")
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of integers (got {seeds!r})")
    for s in seeds:
        _check_int("every seed", s, 0, "e.g. seeds=(0, 1)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat (got {list(seeds)}); give each seed once")
    _check_int("k", k, 2, "tune compares at least 2 candidates (5 is the default)")
    if not isinstance(prune, bool):
        raise ValueError(f"prune must be True or False (got {prune!r})")
    if rounds not in (1, 2) or isinstance(rounds, bool):
        raise ValueError(f"rounds must be 1 or 2 (got {rounds!r})")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)} (got {executor!r})")
    if executor in ("processes", "ray") and not problem.importable:
        raise ValueError(
            f"executor {executor!r} runs in other processes, which need a task by name: pass "
            "a built-in task name or 'module.path:function' (or use executor='vectorized' "
            "or 'serial')"
        )
    if executor in ("processes", "ray"):
        from lrkit.sweeps.executors import check_executor

        check_executor(executor, workers, address)
        if optimizer_kwargs is not None:
            raise ValueError(
                f"optimizer_kwargs={dict(optimizer_kwargs)!r} cannot reach executor "
                f"{executor!r}: its workers build the task's own optimizer options. Put them "
                "in the Task (Task(optimizer_kwargs=...)), or use executor='vectorized', "
                "'serial' or 'auto'"
            )
    if finder_runs is not None:
        _check_int("finder_runs", finder_runs, 1, "3 measures the spread; None sizes it")
    finder_options = dict(finder_kwargs or {})
    reserved = {"runs", "seed", "for_schedule", "progress", "step_fn"} & set(finder_options)
    if reserved:
        raise ValueError(
            f"finder_kwargs may not set {', '.join(sorted(reserved))}: tune sets them "
            "(finder_runs, seeds, schedule, progress, step_fn)"
        )
    for_run(schedule, 0.1, 10)
    seeds = tuple(int(s) for s in seeds)
    state = _Round(problem, schedule, epochs, seeds, prune, None, progress)
    if executor == "vectorized":  # refused now, not after the range test and the claims
        why = _batched_problem(problem, state, k * len(seeds))
        if why is not None:
            raise ValueError(f"executor='vectorized' cannot run this model: {why}; "
                             "use executor='serial' or 'auto'")  # fmt: skip
    state.db = Store(store) if store is not None else None

    length = len(problem.loader(seeds[0]))  # type: ignore[arg-type]
    given = finder_options.get("num_steps")  # a bad one is find_lr's to refuse, by name
    own = given if isinstance(given, int) and not isinstance(given, bool) else None
    accumulate = finder_options.get("accumulation_steps", 1)
    accumulate = accumulate if isinstance(accumulate, int) and accumulate >= 1 else 1
    sized = finder_runs is None
    finder_runs = range_test_size(epochs * length, finder_runs,
                                  (own or FINDER_STEPS) * accumulate)  # fmt: skip
    rng = LoaderRng([problem.shared, problem.val_loader])
    caveats: list[str] = []
    try:
        finder = _range_test(problem, schedule, seeds[0], 0, finder_runs, finder_options,
                             progress)  # fmt: skip
        if sized and finder.runs == 1 and doubtful(finder, schedule):
            why = "; ".join(c.split(": ")[0] for c in finder.caveats) or "no suggestion"
            caveats.append(
                f"one range-test run was doubtful ({why}); {FINDER_RUNS - 1} more were run "
                f"and the interval is the {FINDER_RUNS} runs'"
            )
            more = _range_test(problem, schedule, seeds[0], 1, FINDER_RUNS - 1,
                               finder_options, progress)  # fmt: skip
            finder = finder.joined(more, finder_options.get("method", "auto"))
    finally:
        rng.restore()
    interval = candidate_interval(finder, schedule, problem.optimizer)
    caveats += [f"range test: {c}" for c in finder.caveats]
    if interval.center is None:
        caveats.append(f"candidate interval: {interval.reason}")
    vectorized = bool(finder_options.get("vectorized", False))
    state.cost = _batches_run(finder, vectorized) * accumulate / (epochs * length)

    lrs = log_points(interval.lo, interval.hi, k)
    sweeps: list[str] = []
    used = _train_round(state, lrs, 1, executor, workers, address, caveats, sweeps)
    if rounds == 2:
        best = _best(state, lrs)
        if best is not None:
            finer = _finer(lrs, best)
            again = _train_round(state, finer, 2, executor, workers, address, caveats, sweeps)
            used = again if used == "store" else used
            lrs = sorted(set(lrs) | set(finer))
    chosen = _best(state, lrs)
    if chosen is None:
        caveats.append(
            "no candidate completed the budget on every seed (all diverged or were pruned); "
            "lr is None: widen the interval or check the model"
        )
    elif chosen in (min(lrs), max(lrs)):
        side = "lowest" if chosen == min(lrs) else "highest"
        caveats.append(
            f"the chosen LR {chosen:.3g} is the {side} candidate: the optimum may lie beyond "
            f"the searched interval {min(lrs):.3g}..{max(lrs):.3g}; rounds=2 searches past it"
        )
    if state.resumed:
        caveats.append(f"{state.resumed} candidate(s) read from the store {store}, not retrained")
    model = None
    if chosen is not None:
        finished = [(c.metric, c.seed) for (lr, _), c in state.candidates.items()
                    if lr == chosen and c.metric is not None]  # fmt: skip
        sign = 1 if problem.metric == "accuracy" else -1
        _, seed = max(finished, key=lambda ms: (sign * ms[0], -ms[1]))
        model = state.models.get((chosen, seed))
        if model is None:
            caveats.append(
                "the winner was read from the store, so its weights are not in this result; "
                "train it once more (Task.fit or fit) to get them"
            )
    return TuneResult(
        lr=chosen, metric=problem.metric, schedule=schedule, epochs=epochs,
        candidates=sorted(state.candidates.values(), key=lambda c: (c.round, c.lr, c.seed)),
        interval=(interval.lo, interval.hi), cost=state.cost,
        wall_s=time.perf_counter() - started, executor=used, caveats=caveats, finder=finder,
        sweeps=sweeps, store=None if store is None else str(store), model=model,
    )  # fmt: skip


def _range_test(problem: _Problem, schedule: str, seed: int, first_run: int, runs: int,
                options: dict[str, Any], progress: bool) -> FinderResult:  # fmt: skip
    """``runs`` range-test runs of the model of ``seed``, starting at run ``first_run``
    (run r's data order and randomness are seed + r, as in one ``find_lr(runs=...)``)."""
    model = problem.make_model(seed)
    opt = OPTIMIZERS[problem.optimizer](model.parameters(), lr=1e-3, **problem.options)
    return find_lr(model, opt, problem.loader(seed), problem.criterion, step_fn=problem.step_fn,
                   runs=runs, seed=seed + first_run, for_schedule=SCHEDULE_OF[schedule],
                   progress=progress, **options)  # fmt: skip


def _batches_run(finder: FinderResult, vectorized: bool) -> int:
    """Optimizer steps the range test computed, over all runs: a stopped run ran to its stop
    step (a non-finite loss is computed, not recorded); batched runs all run as long as the
    longest."""
    steps = [c.stop_step + 1 if c.stop_step is not None else len(c.lrs) for c in finder.curves]
    return max(steps) * len(steps) if vectorized else sum(steps)


def _best(state: _Round, lrs: Sequence[float]) -> float | None:
    """The LR among ``lrs`` with the best seed-mean metric over completed seeds (the first
    of equals)."""
    scores = state.mean_scores()
    found = [lr for lr in lrs if lr in scores]
    return max(found, key=scores.__getitem__) if found else None


def _finer(lrs: Sequence[float], best: float) -> list[float]:
    """Round 2's LRs: a third of round 1's spacing around ``best``, or further out past an
    edge of round 1 when ``best`` is on it."""
    ratio = (max(lrs) / min(lrs)) ** (1 / (len(lrs) - 1))
    if best == max(lrs):
        steps = [1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2]
    elif best == min(lrs):
        steps = [-1 / 3, -2 / 3, -1, -4 / 3, -5 / 3, -2]
    else:
        steps = [-2 / 3, -1 / 3, 1 / 3, 2 / 3]
    return [best * ratio**s for s in steps]


def _center_out(lrs: Sequence[float]) -> list[float]:
    """The LRs from the middle outward (so that serial pruning compares against the most
    likely winners first)."""
    mid = (len(lrs) - 1) / 2
    return sorted(lrs, key=lambda lr: (abs(lrs.index(lr) - mid), lrs.index(lr)))


def _identity(state: _Round) -> str:
    """6 hex digits of what changes a candidate's result beyond its sweep spec: the optimizer's
    options, the metric, pruning, and the model's parameter names and shapes (two different
    factories of one name do not share stored runs)."""
    problem = state.problem
    shapes = state.layout[2]
    rule = RULE if state.prune else False  # unpruned runs read back whatever the rule
    blob = json.dumps([sorted(problem.options.items()), problem.metric, rule, shapes],
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha1(blob.encode()).hexdigest()[:6]


def _train_round(
    state: _Round, lrs: Sequence[float], round_: int, executor: str, workers: int | None,
    address: str | None, caveats: list[str], sweeps: list[str],
) -> str:  # fmt: skip
    """Train ``lrs`` × seeds (what the store does not hold yet); return the executor used."""
    problem = state.problem
    members = [(lr, s) for s in state.seeds for lr in _center_out(lrs)]
    todo = list(members)
    if state.db is not None:
        spec = SweepSpec(task=problem.name, lrs=list(lrs), epochs=state.epochs,
                         schedules=(state.schedule,), optimizers=(problem.optimizer,),
                         seeds=state.seeds, name=f"tune-r{round_}-{_identity(state)}")  # fmt: skip
        configs = {(c.lr, c.seed): c for c in spec.expand()}
        tune_info = {"round": round_, "prune": state.prune, "metric": problem.metric}
        record = {"resolved_lrs": list(lrs), "sweep_id": spec.sweep_id, "tune": tune_info}
        state.db.register(spec.sweep_id, spec.to_dict() | record, list(configs.values()))
        sweeps.append(spec.sweep_id)
        done = {r.id: r for r in state.db.runs(spec.sweep_id) if r.status == "done"}
        for member in members:
            state.run_ids[member] = configs[member].id
            if configs[member].id in done:
                state.load(member, done[configs[member].id], round_)
        todo = [m for m in members if m not in state.candidates]
        claimed = set(state.db.claim([state.run_ids[m] for m in todo]))
        elsewhere = [m for m in todo if state.run_ids[m] not in claimed]
        if elsewhere:
            which = ", ".join(f"lr {lr:.3g} seed {s}" for lr, s in elsewhere)
            caveats.append(
                f"{len(elsewhere)} candidate(s) of round {round_} are being trained by another "
                f"live process on the store ({which}) and are not in this result; rerun when "
                "it has finished"
            )
        todo = [m for m in todo if state.run_ids[m] in claimed]
    if not todo:
        return executor if executor != "auto" else "store"
    if executor in ("processes", "ray"):
        _train_executor(state, todo, round_, executor, workers, address, caveats)
        return executor
    if executor in ("auto", "vectorized"):
        problem_text = _batched_problem(problem, state, len(todo))
        if problem_text is None:
            _train_batched(state, todo, round_)
            return "vectorized"
        if executor == "vectorized":
            raise ValueError(f"executor='vectorized' cannot run this model: {problem_text}; "
                             "use executor='serial' or 'auto'")  # fmt: skip
        message = f"trained one after another (serial), not vectorized: {problem_text}"
        log.warning(message)
        if message not in caveats:
            caveats.append(message)
    _train_serial(state, [m for m in todo if m not in state.candidates], round_)
    return "serial"
