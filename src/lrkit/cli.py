"""The ``lrkit`` command: a thin typer layer over the library.

User errors (unknown task, bad argument, missing files) print one line and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lrkit.optimizers import DEFAULT_LRS, OPTIMIZERS
from lrkit.sweeps import Store
from lrkit.sweeps.executors import EXECUTORS

app = typer.Typer(
    help="lrkit: the learning-rate toolkit for PyTorch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_state: dict[str, bool] = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    _state["debug"] = debug


USER_ERRORS = (ValueError, TypeError, ImportError, FileNotFoundError)
"""What a user's input can cause: one line and exit code 2 (``--debug`` shows the trace)."""
P = ParamSpec("P")
R = TypeVar("R")


def _fail(exc: BaseException) -> NoReturn:
    if _state["debug"]:
        raise exc
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(2)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """The command, with a user error (:data:`USER_ERRORS`) turned into one line and exit 2."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            _fail(exc)

    return run


def suggestions_table(result: Any, title: str = "LR suggestions") -> Table:
    """A rich table of a FinderResult: the suggestion for its schedule (``res.suggestion``)
    first, then each rule's raw LR, labelled so the two are never confused."""
    table = Table(title=title, caption=result.suggestion_label)
    table.add_column("")
    table.add_column("lr", justify="right")
    table.add_column("spread (decades)", justify="right")
    table.add_column("how")
    lr = result.suggestion
    table.add_row(
        f"suggestion ({result.for_schedule})",
        "—" if lr is None else f"{lr:.3g}",
        "",
        result.suggestion_label,
        style="bold",
    )
    for name, lr in result.suggestions.items():
        spread = result.spread.get(name)
        table.add_row(
            f"rule {name} (raw)" + (" *" if name == result.method else ""),
            "—" if lr is None else f"{lr:.3g}",
            "" if spread is None or result.runs == 1 else f"{spread:.2f}",
            result.notes.get(name, ""),
        )
    return table


TaskArg = Annotated[
    str, typer.Argument(help="Built-in task (digits-mlp, mnist-lenet, ...) or 'module:function'.")
]
DataDir = Annotated[
    Path | None, typer.Option(help="Folder with the dataset files (fashion-mnist-lenet).")
]
Fold = Annotated[int | None, typer.Option(help="Cross-validation fold to validate on.")]
Folds = Annotated[int, typer.Option(help="Number of cross-validation folds.")]
OPTIMIZER_HELP = ", ".join(OPTIMIZERS)
Seed = Annotated[int, typer.Option(help="Seed for model init and data order.")]


@app.command()
@user_errors
def find(
    task: TaskArg,
    start_lr: Annotated[float, typer.Option(help="First LR of the sweep.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last LR of the sweep.")] = 10.0,
    steps: Annotated[int, typer.Option(help="Optimizer steps (points on the curve).")] = 100,
    mode: Annotated[str, typer.Option(help="'exp' or 'linear' LR growth.")] = "exp",
    runs: Annotated[int, typer.Option(help="Repeat with different seeds; reports spread.")] = 1,
    seed: Seed = 0,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory for finder.png and finder.json.")
    ] = Path("lrkit-out"),
    data_dir: DataDir = None,
    fold: Fold = None,
    n_folds: Folds = 5,
    optimizer_name: Annotated[
        str | None,
        typer.Option(
            "--optimizer",
            help="sgd, adam, adamw or nadam (default: the task's); prodigy and schedulefree_* "
            "are refused (their LR is not one a range test can locate).",
        ),
    ] = None,
) -> None:
    """Run the LR range test on TASK; print the suggestions, save the curve and its plot."""
    from lrkit.finder import find_lr
    from lrkit.tasks import get_task

    t = get_task(task, data_dir=data_dir, fold=fold, n_folds=n_folds, seed=seed)
    model = t.make_model(seed)
    optimizer = t.make_optimizer(model, optimizer=optimizer_name)
    result = find_lr(
        model, optimizer, t.train_loader(seed), t.criterion, start_lr=start_lr,
        end_lr=end_lr, num_steps=steps, mode=mode, runs=runs, seed=seed,  # type: ignore[arg-type]
    )  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    result.save(output / "finder.json")
    result.plot(output / "finder.png")
    console.print(suggestions_table(result, f"LR suggestions for {escape(t.name)}"))
    for caveat in result.caveats:
        console.print(f"[yellow]caveat:[/] {escape(caveat)}")
    per_schedule = ", ".join(
        f"{name} {lr:.3g}"
        for name in ("constant", "one_cycle", "cosine")
        if (lr := result.suggestion_for(name)) is not None
    )
    console.print(f"suggested peak LR by schedule: {per_schedule or '—'}")
    console.print(
        f"stopped: {result.stop_reason}; {len(result.lrs)} points in {result.elapsed_s:.1f}s"
    )
    console.print(f"wrote {output / 'finder.png'} and {output / 'finder.json'}")


IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")


@app.command()
@user_errors
def schedule(
    spec: Annotated[
        list[str],
        typer.Argument(
            help="Schedule spec(s), e.g. "
            "'warmup(cosine(max_lr=0.1, total_steps=900), warmup_steps=100)'."
        ),
    ],
    steps: Annotated[int, typer.Option(help="Steps to plot.")] = 1000,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write.")] = Path(
        "schedule.png"
    ),
) -> None:
    """Plot one or more schedules (overlaid) and print their values at a few steps."""
    from lrkit import plot_schedule
    from lrkit.schedules import parse

    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(
            f"-o {output}: the plot is an image; name a {', '.join(IMAGE_SUFFIXES)} file, "
            f"e.g. -o {output.with_suffix('.png')}"
        )
    scheds = [parse(s) for s in spec]
    if steps < 1:
        raise ValueError(f"--steps must be >= 1 (got {steps})")
    table = Table(title="learning rate at selected steps")
    table.add_column("step", justify="right")
    for i in range(len(scheds)):
        table.add_column(f"#{i + 1}", justify="right")
    marks = sorted({0, steps // 10, steps // 4, steps // 2, 3 * steps // 4, steps - 1})
    for t in marks:
        table.add_row(str(t), *(f"{s(t):.4g}" for s in scheds))
    console.print(table)
    for i, s in enumerate(scheds):
        console.print(f"#{i + 1}: {s.to_spec()}", highlight=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    plot_schedule(scheds, steps, path=output)
    console.print(f"wrote {output}")


@app.command()
@user_errors
def train(
    task: TaskArg,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Learning rate (max LR of a schedule). Required, except for prodigy, "
            "schedulefree_adamw and schedulefree_sgd, which default to their documented LR."
        ),
    ] = None,
    schedule: Annotated[
        str,
        typer.Option(
            help="A spec, or a bare name filled with --lr and the run's length: constant, "
            "cosine, linear, one_cycle, wsd, warmup_cosine."
        ),
    ] = "constant",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the task's).")] = None,
    optimizer: Annotated[
        str | None, typer.Option(help=OPTIMIZER_HELP + " (default: the task's).")
    ] = None,
    seed: Seed = 0,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory for history.json and curves.png.")
    ] = Path("lrkit-out"),
    data_dir: DataDir = None,
    fold: Fold = None,
    n_folds: Folds = 5,
) -> None:
    """Train TASK with one LR and schedule; print the epochs, save the history and curves."""
    from lrkit._plot import plot_histories, plot_lr_histories
    from lrkit.tasks import get_task

    t = get_task(task, data_dir=data_dir, fold=fold, n_folds=n_folds, seed=seed)
    name = optimizer or t.optimizer
    run_lr = lr if lr is not None else t.default_lr(name) if name in DEFAULT_LRS else None
    if run_lr is None:
        raise ValueError(
            f"--lr is needed for {name} (only {', '.join(DEFAULT_LRS)} have a documented "
            "default LR)"
        )
    sched = t.schedule_for(schedule, run_lr, epochs)
    history = t.fit(lr, schedule=schedule, optimizer=name, seed=seed, epochs=epochs)
    console.print(f"{t.name}: {name}, {sched.to_spec()}", highlight=False, markup=False)
    for caveat in history.caveats:
        console.print(f"[yellow]caveat:[/] {escape(caveat)}")
    table = Table()
    for column in history.epochs[0] if history.epochs else ["epoch"]:
        table.add_column(column, justify="right")
    for row in history.epochs:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    console.print(f"{history.stop_reason}; {history.wall_s:.1f}s")
    output.mkdir(parents=True, exist_ok=True)
    history.save(output / "history.json")
    plot_histories({sched.to_spec(): history}, output / "curves.png", metric=t.metric)
    plot_lr_histories({sched.to_spec(): history}, output / "lr.png")
    console.print(f"wrote {output / 'history.json'}, curves.png and lr.png")


@app.command()
@user_errors
def demo(
    task: Annotated[str, typer.Option(help="Task to run the experiment on.")] = "mnist-lenet",
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory.")] = Path(
        "lrkit-demo"
    ),
    quick: Annotated[bool, typer.Option(help="A small slice and 2 epochs: seconds.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Epochs per run (default: task's).")] = None,
    seed: Seed = 0,
    data_dir: DataDir = None,
) -> None:
    """The finder's LR vs fixed LRs 1e-5, 1e-4, 1e-1, and one-cycle: report.html and PNGs."""
    from lrkit.demo import run_demo, summary_rows

    results = run_demo(
        task, output, quick=quick, epochs=epochs, seed=seed, data_dir=data_dir,
        log=lambda line: console.print(line, highlight=False),
    )  # fmt: skip
    header, rows, _ = summary_rows(results)
    table = Table(title=f"{escape(results['task'])}: {results['epochs']} epochs per run")
    for column in header:
        table.add_column(column, justify="left" if column == "run" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        f"range test {results['finder_s']:.1f}s, whole demo {results['total_s']:.0f}s; "
        f"best: {results['best']}"
    )
    console.print(
        f"wrote {output / 'report.html'} (and finder.png, curves.png, lr.png, results.json)"
    )


@app.command()
@user_errors
def finetune(
    task: TaskArg,
    pretrained: Annotated[Path, typer.Option(help="Checkpoint (a state dict) to start from.")],
    epochs: Annotated[int, typer.Option(help="Epochs with everything unfrozen.")] = 3,
    freeze_epochs: Annotated[int, typer.Option(help="Epochs on the head alone first.")] = 1,
    lr: Annotated[float | None, typer.Option(help="Base LR (default: run the finder).")] = None,
    lr_mult: Annotated[float, typer.Option(help="Last/first group LR ratio.")] = 100.0,
    groups: Annotated[int | None, typer.Option(help="Merge into this many groups.")] = None,
    seed: Seed = 0,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory.")] = Path(
        "lrkit-out"
    ),
    data_dir: DataDir = None,
) -> None:
    """Fine-tune TASK's model from CHECKPOINT: head first, then everything (discriminative)."""
    from lrkit.finetune import fine_tune
    from lrkit.tasks import get_task

    t = get_task(task, data_dir=data_dir)
    model = t.make_model(seed)
    loaded, skipped = _load_checkpoint(model, pretrained)
    with warnings.catch_warnings():  # result.caveats, printed below
        warnings.filterwarnings("ignore", "the unfrozen-phase range test", UserWarning)
        result = fine_tune(
            model, t.train_loader(seed), t.criterion, epochs=epochs,
            freeze_epochs=freeze_epochs, base_lr=lr, lr_mult=lr_mult, val_loader=t.val_loader(),
            groups=groups, optimizer=t.optimizer, optimizer_kwargs=t.optimizer_kwargs,
            metrics=(t.metric,), seed=seed,
        )  # fmt: skip
    new = ", ".join(skipped) or "—"
    console.print(f"loaded {len(loaded)} tensors from {pretrained}; new: {new}", markup=False)
    spread = ", ".join(f"{x:.2g}" for x in result.full_lrs)
    console.print(f"head: lr {result.head_lr:.3g}; all: lrs {spread}")
    for stage, finder in (("head", result.head_finder), ("all", result.full_finder)):
        for caveat in finder.caveats if finder is not None else []:
            console.print(f"[yellow]{stage} finder caveat:[/] {escape(caveat)}")
    for caveat in result.caveats:  # printed here rather than as a Python warning
        console.print(f"[yellow]caveat:[/] {escape(caveat)}")
    for stage, history in (("head", result.head_history), ("all", result.full_history)):
        for row in history.epochs:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
            console.print(f"{stage} epoch {row['epoch']}: {shown}")
    output.mkdir(parents=True, exist_ok=True)
    result.full_history.save(output / "finetune_history.json")
    console.print(f"wrote {output / 'finetune_history.json'}")


def _load_checkpoint(model: Any, path: Path) -> tuple[list[str], list[str]]:
    """:func:`~lrkit.finetune.load_pretrained`, with what torch says about a file that is
    not a state dict turned into one line naming the path and the fix."""
    import pickle

    from lrkit.finetune import load_pretrained

    fix = "save the weights with torch.save(model.state_dict(), path)"
    try:
        return load_pretrained(model, path)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise ValueError(
                f"--pretrained {path} holds pickled Python objects (a whole model?), not a "
                f"state dict; {fix}"
            ) from None
        raise ValueError(f"--pretrained {path} is not a PyTorch checkpoint; {fix}") from None
    except (FileNotFoundError, ValueError):
        raise
    except Exception as exc:  # torch's many ways to say "not a checkpoint" (KeyError, EOF...)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"--pretrained {path} is not a PyTorch checkpoint ({type(exc).__name__}: {first}); "
            f"{fix}"
        ) from None


EXECUTOR_HELP = "; ".join(f"{name}: {what}" for name, what in EXECUTORS.items()) + "."


@app.command("sweep")
@user_errors
def sweep_command(
    spec: Annotated[Path, typer.Argument(help="A TOML file with the sweep's fields.")],
    store: Annotated[
        Path | None, typer.Option(help="Store directory (default: runs/<spec name>).")
    ] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "serial",
    workers: Annotated[int | None, typer.Option(help="Processes / Ray CPUs.")] = None,
    address: Annotated[str | None, typer.Option(help="Address of a Ray cluster.")] = None,
    report: Annotated[
        bool, typer.Option(help="Write <sweep id>/report.html (the report extra).")
    ] = True,
    take_over: Annotated[
        bool,
        typer.Option(help="Take runs another process claimed, when you know it is gone."),
    ] = False,
) -> None:
    """Run (or resume) the sweep in SPEC; write the store and the sweep's report.

    Exit 1 when every run this call ran failed; runs another live process holds are left to
    it and counted as running elsewhere.
    """
    from lrkit.sweeps import SweepSpec, run_spec
    from lrkit.sweeps.driver import report_path

    if not spec.is_file():
        raise FileNotFoundError(f"no sweep spec at {spec}")
    parsed = SweepSpec.from_toml(spec)
    if report:
        from lrkit.report.html import require_report_extras

        require_report_extras(skip="--no-report")
    result = run_spec(parsed, executor=executor, store=store or Path("runs") / parsed.name,
                      workers=workers, address=address, take_over=take_over)  # fmt: skip
    done = sum(r.status == "done" for r in result.runs)
    console.print(
        f"{result.name}: {result.ran} ran, {result.skipped} already done, "
        f"{len(result.elsewhere)} running elsewhere; {done}/{len(result.runs)} done in the "
        f"store, {len(result.failures)} failed",
        highlight=False,
    )
    if result.elsewhere:
        owners = ", ".join(sorted(set(result.elsewhere.values())))
        console.print(
            f"[yellow]{len(result.elsewhere)} running elsewhere[/] (owner host/pid/start: "
            f"{escape(owners)}); run again when they finish, or with --take-over if that "
            "process is gone"
        )
    for r in result.failures:
        console.print(f"[red]failed[/] {r.id} lr={r.config['lr']:.3g}: {escape(r.error or '')}")
    if report and done:
        from lrkit.report.sweep import write_sweep_report

        path = write_sweep_report(result.store, result.name,
                                  report_path(result.store, result.name))  # fmt: skip
        console.print(f"wrote {path}")
    if result.all_failed:
        err_console.print(
            f"[bold red]error:[/] every run of {escape(result.name)} failed; first error: "
            f"{escape((result.failures[0].error or '').splitlines()[-1])}",
            highlight=False,
        )
        raise typer.Exit(1)


def _open_store(directory: Path) -> Store:
    """The store in ``directory``, never created by a read-only command."""
    return Store(directory, create=False)


SweepName = Annotated[
    str | None,
    typer.Option("--sweep", "--name", help="Sweep id or name, when the store holds several."),
]


@app.command()
@user_errors
def report(
    store: Annotated[Path, typer.Argument(help="A sweep's store directory.")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="HTML file (default: STORE/<sweep id>/report.html)."),
    ] = None,
    sweep: SweepName = None,
) -> None:
    """Rebuild the HTML report of a sweep from its store."""
    from lrkit.report.sweep import write_sweep_report
    from lrkit.sweeps.driver import report_path

    db = _open_store(store)
    sweep_id = db.resolve_sweep(sweep)
    path = write_sweep_report(db, sweep_id, output or report_path(db, sweep_id))
    console.print(f"wrote {path}")


runs_app = typer.Typer(help="Inspect the runs in a sweep store.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
StoreOpt = Annotated[Path, typer.Option(help="Store directory.")]


def _status(record: Any) -> str:
    return "diverged" if record.status == "done" and record.diverged else record.status


@runs_app.command("ls")
@user_errors
def runs_ls(
    store: Annotated[Path, typer.Argument(help="Store directory.")],
    sweep: SweepName = None,
) -> None:
    """One line per run: id, status, config, final metric (fits 80 columns)."""
    from lrkit.report.analysis import pick_metric

    db = _open_store(store)
    sweep_id = db.resolve_sweep(sweep)
    records = db.runs(sweep_id)
    metric = pick_metric(records)
    console.print(f"sweep {sweep_id}: {len(records)} runs", highlight=False)
    table = Table(box=None, pad_edge=False)
    for column in ("id", "status", "lr", "schedule", "opt", "seed", "fold", metric):
        table.add_column(column, justify="right" if column in ("lr", "seed", metric) else "left",
                         no_wrap=True, overflow="ellipsis",
                         max_width=16 if column == "schedule" else None)  # fmt: skip
    for r in records:
        c = r.config
        value = r.summary.get("final", {}).get(metric)
        shown = f"{value:.4g}" if isinstance(value, float) else ""
        table.add_row(r.id[:8], _status(r), f"{c['lr']:.3g}", c["schedule"], c["optimizer"],
                      str(c["seed"]), "-" if c["fold"] is None else str(c["fold"]),
                      shown)  # fmt: skip
    console.print(table)
    failed = [r for r in records if r.status == "failed"]
    if failed:
        console.print(f"{len(failed)} failed: `lrkit runs show ID` prints the error")


@runs_app.command("best")
@user_errors
def runs_best(
    store: Annotated[Path, typer.Argument(help="Store directory.")],
    sweep: SweepName = None,
    top: Annotated[int, typer.Option(help="Configurations to list.")] = 8,
) -> None:
    """The configurations ranked by final metric over their seeds and folds, and the verdict."""
    from lrkit.report.analysis import pick_metric, ranked, summarize, verdict

    db = _open_store(store)
    records = db.runs(db.resolve_sweep(sweep))
    metric = pick_metric(records)
    summaries = summarize(records, metric)
    table = Table(title=f"final {metric}, best first")
    for column in ("configuration", "mean", "std", "finished", "diverged", "failed"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for s in ranked(summaries, metric)[:top]:
        table.add_row(s.label, f"{s.mean:.4g}", f"{s.std:.2g}", f"{len(s.values)}/{s.runs}",
                      str(s.diverged), str(s.failed))  # fmt: skip
    console.print(table)
    console.print(verdict(summaries, metric), highlight=False)


@runs_app.command("show")
@user_errors
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    store: StoreOpt = Path("runs/sweep"),
) -> None:
    """A run's config, status, error and per-epoch metrics."""
    db = _open_store(store)
    r = db.run(run_id)
    console.print(f"run {r.id} of {r.sweep} ({_status(r)})", markup=False)
    for key, value in r.config.items():
        console.print(f"  {key}: {value}", markup=False)
    if r.error:
        console.print(f"  error: {r.error}", markup=False)
    epochs = db.metrics(r.id, "epoch")
    if epochs:
        table = Table()
        table.add_column("epoch")
        for name in epochs:
            table.add_column(name, justify="right")
        for i in range(len(next(iter(epochs.values())))):
            table.add_row(str(i + 1), *(f"{v[i]:.4g}" for v in epochs.values()))
        console.print(table)


@app.command("tune")
@user_errors
def tune_command(
    task: TaskArg,
    k: Annotated[int, typer.Option("--k", help="Candidate LRs trained at the full budget.")] = 5,
    schedule: Annotated[
        str, typer.Option(help="The protocol: constant, one_cycle, cosine or warmup_cosine.")
    ] = "constant",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the task's).")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, e.g. 0,1.")] = "0",
    prune: Annotated[bool, typer.Option(help="Stop candidates clearly behind early.")] = True,
    rounds: Annotated[int, typer.Option(help="1, or 2 for a finer round.")] = 1,
    executor: Annotated[
        str, typer.Option(help="auto, vectorized, serial, processes or ray.")
    ] = "auto",
    store: Annotated[
        Path | None, typer.Option(help="Sweep store directory: resumable, seen by `lrkit runs`.")
    ] = None,
) -> None:
    """Pick TASK's LR: a range test, then K candidates around it at the full budget."""
    from lrkit.tuning import tune

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers (got {seeds!r})") from None
    res = tune(task, k=k, schedule=schedule, epochs=epochs, seeds=seed_list, prune=prune,
               rounds=rounds, executor=executor, store=store)  # fmt: skip
    table = Table(title=f"{escape(task)}: {res.schedule}, {res.epochs} epochs ({res.executor})")
    for column in ("round", "lr", "seed", res.metric, "stopped at", "outcome"):
        table.add_column(column, justify="right")
    for c in sorted(res.candidates, key=lambda c: (c.round, c.lr, c.seed)):
        outcome = "diverged" if c.diverged else "pruned" if c.pruned else "done"
        if c.lr == res.lr and c.completed:
            outcome = "[bold green]chosen[/]"
        metric = "-" if c.metric is None else f"{c.metric:.4g}"
        table.add_row(str(c.round), f"{c.lr:.3g}", str(c.seed), metric, str(c.stopped_at), outcome)
    console.print(table)
    for caveat in res.caveats:
        console.print(f"caveat: {escape(caveat)}")
    chosen = "none" if res.lr is None else f"{res.lr:.4g}"
    console.print(
        f"chosen LR: {chosen}; cost {res.cost:.2f} run-equivalents, {res.wall_s:.1f}s",
        highlight=False,
    )


def main() -> None:
    """Entry point of the ``lrkit`` console script."""
    sys.exit(app())
