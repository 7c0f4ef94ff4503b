"""The ``lrkit`` command: a thin typer layer over the library.

User errors (unknown task, bad argument, missing files) print one line and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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


def _fail(exc: BaseException) -> None:
    if _state["debug"]:
        raise exc
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(2)


def suggestions_table(result: Any, title: str = "LR suggestions") -> Table:
    """A rich table of a FinderResult's suggestions, the chosen one first."""
    table = Table(title=title)
    table.add_column("rule")
    table.add_column("lr", justify="right")
    table.add_column("spread (decades)", justify="right")
    table.add_column("how")
    for name, lr in result.suggestions.items():
        chosen = " (suggestion)" if name == result.method else ""
        spread = result.spread.get(name)
        table.add_row(
            name + chosen,
            "—" if lr is None else f"{lr:.3g}",
            "" if spread is None or result.runs == 1 else f"{spread:.2f}",
            result.notes.get(name, ""),
        )
    return table


@app.command()
def find(
    task: Annotated[str, typer.Argument(help="Built-in task name or 'module:function'.")],
    start_lr: Annotated[float, typer.Option(help="First LR of the sweep.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last LR of the sweep.")] = 10.0,
    steps: Annotated[int, typer.Option(help="Optimizer steps (points on the curve).")] = 100,
    mode: Annotated[str, typer.Option(help="'exp' or 'linear' LR growth.")] = "exp",
    runs: Annotated[int, typer.Option(help="Repeat with different seeds; reports spread.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for model init and data order.")] = 0,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory for finder.png and finder.json.")
    ] = Path("lrkit-out"),
) -> None:
    """Run the LR range test on TASK; print the suggestions, save the curve and its plot."""
    from lrkit.finder import find_lr
    from lrkit.tasks import get_task

    try:
        t = get_task(task)
        model = t.make_model(seed)
        optimizer = t.make_optimizer(model)
        result = find_lr(
            model, optimizer, t.train_loader(seed), t.criterion, start_lr=start_lr,
            end_lr=end_lr, num_steps=steps, mode=mode, runs=runs, seed=seed,  # type: ignore[arg-type]
        )  # fmt: skip
    except (ValueError, TypeError, ImportError, FileNotFoundError) as exc:
        _fail(exc)
        return
    output.mkdir(parents=True, exist_ok=True)
    result.save(output / "finder.json")
    result.plot(output / "finder.png")
    console.print(suggestions_table(result, f"LR suggestions for {t.name}"))
    if result.unstable:
        console.print(f"[yellow]unstable over runs:[/] {', '.join(result.unstable)}")
    console.print(
        f"stopped: {result.stop_reason}; {len(result.lrs)} points in {result.elapsed_s:.1f}s"
    )
    console.print(f"wrote {output / 'finder.png'} and {output / 'finder.json'}")


@app.command()
def schedule(
    spec: Annotated[
        list[str],
        typer.Argument(
            help="Schedule spec(s), e.g. 'warmup(cosine(lr=0.1, steps=900), steps=100)'."
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

    try:
        scheds = [parse(s) for s in spec]
        if steps < 1:
            raise ValueError(f"--steps must be >= 1 (got {steps})")
    except (ValueError, TypeError) as exc:
        _fail(exc)
        return
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


def main() -> None:
    """Entry point of the ``lrkit`` console script."""
    sys.exit(app())
