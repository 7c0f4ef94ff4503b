"""The built-in reproduction: the finder's LR against fixed guesses, on real data.

The published experiment (LeNet on Fashion-MNIST, PyTorch Lightning's finder picked 0.0363 in
about 12 s and beat fixed LRs 1e-5, 1e-4 and 1e-1 with 88.85% val accuracy, val loss 0.3091)
rerun with lrkit on a dataset that ships with a dependency: run the range test (timed), then
train with the fixed LRs, the finder's LR, and one-cycle with the finder's one-cycle LR as
its max —
same initial weights, same data order, same epochs — and write a report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from lrkit.finder import FinderResult, find_lr
from lrkit.schedules import Schedule, constant, one_cycle
from lrkit.tasks import Task, get_task, num_samples
from lrkit.train import History

FIXED_LRS = (1e-5, 1e-4, 1e-1)
PUBLISHED = {
    "source": "LeNet on Fashion-MNIST with PyTorch Lightning's LR finder",
    "finder_lr": 0.0363,
    "finder_s": 12.0,
    "val_accuracy": 0.8885,
    "val_loss": 0.3091,
}
# LeNet with SGD only starts to learn near 1e-2: a 200-step sweep from 1e-5 gives the
# valley enough points; the default 100 steps over 8 decades leaves it a handful.
FINDER = {"start_lr": 1e-5, "end_lr": 10.0, "num_steps": 200}
QUICK_FINDER = {"start_lr": 1e-5, "end_lr": 10.0, "num_steps": 60}


@dataclass
class Run:
    """One training run of the demo: its label, LR, schedule and history."""

    label: str
    lr: float
    schedule: Schedule
    history: History

    def summary(self, metric: str) -> dict[str, Any]:
        final = self.history.final
        return {
            "label": self.label,
            "lr": self.lr,
            "schedule": self.schedule.to_spec(),
            "val_loss": final.get("val_loss"),
            metric: final.get(metric),
            "train_loss": final.get("train_loss"),
            "wall_s": self.history.wall_s,
            "diverged": self.history.diverged,
            "stop_reason": self.history.stop_reason,
        }


def quick_task(task: Task, train: int = 768, val: int = 256) -> Task:
    """A small slice of ``task`` for a fast end-to-end check (``--quick``)."""
    return replace(
        task,
        train=Subset(task.train, range(min(train, num_samples(task.train)))),
        val=Subset(task.val, range(min(val, num_samples(task.val)))),
        epochs=2,
    )


def run_demo(
    task: str = "mnist-lenet",
    output: str | Path = "lrkit-demo",
    *,
    quick: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the experiment, write ``report.html``, PNGs and ``results.json`` to ``output``."""
    t = get_task(task, data_dir=data_dir)
    if quick:
        t = quick_task(t)
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1 (got {epochs})")
        t = replace(t, epochs=epochs)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    log(f"range test on {t.name} ({num_samples(t.train)} training samples)")
    model = t.make_model(seed)
    finder = find_lr(
        model, t.make_optimizer(model), t.train_loader(seed), t.criterion, seed=seed,
        progress=progress, **(QUICK_FINDER if quick else FINDER),  # type: ignore[arg-type]
    )  # fmt: skip
    lr, peak = finder.suggestion_for("constant"), finder.suggestion_for("one_cycle")
    if lr is None or peak is None:
        lr = peak = finder.suggestions.get("minimum") or t.lr
        log(f"no auto suggestion ({finder.notes['auto']}); using {lr:.3g}")

    steps = t.epochs * len(t.train_loader(seed))
    plan: list[tuple[str, float, Schedule]] = [
        (f"fixed {fixed:g}", fixed, constant(fixed)) for fixed in FIXED_LRS
    ]
    plan.append((f"finder {lr:.3g}", lr, constant(lr)))
    plan.append((f"one-cycle max {peak:.3g}", peak, one_cycle(max_lr=peak, total_steps=steps)))
    runs: list[Run] = []
    for i, (label, run_lr, schedule) in enumerate(plan, start=1):
        log(f"[{i}/{len(plan)}] {label}: {t.epochs} epochs")
        # the same initial weights and data order (seed) for every run
        history = t.fit(schedule=schedule, seed=seed, progress=progress)
        runs.append(Run(label, run_lr, schedule, history))

    results = write_outputs(out, t, finder, runs, time.perf_counter() - started, quick)
    return results


def best_run(runs: list[Run], metric: str) -> Run:
    """The run with the best final validation metric (diverged runs last)."""
    return max(
        runs,
        key=lambda r: (not r.history.diverged, r.history.final.get(metric, float("-inf"))),
    )


def write_outputs(
    out: Path,
    task: Task,
    finder: FinderResult,
    runs: list[Run],
    total_s: float,
    quick: bool = False,
) -> dict[str, Any]:
    """results.json, finder.png, curves.png, lr.png and report.html in ``out``."""
    from lrkit._plot import plot_histories, plot_lr_histories

    metric = task.metric
    histories = {r.label: r.history for r in runs}
    best = best_run(runs, metric)
    results: dict[str, Any] = {
        "task": task.name,
        "epochs": task.epochs,
        "metric": metric,
        "finder": finder.to_dict(),
        "finder_s": finder.elapsed_s,
        "runs": [r.summary(metric) for r in runs],
        "best": best.label,
        "total_s": total_s,
        "published": PUBLISHED,
        "quick": quick,
        "torch": torch.__version__,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    finder.plot(out / "finder.png")
    plot_histories(histories, out / "curves.png", metric=metric)
    plot_lr_histories(histories, out / "lr.png")
    write_report(out / "report.html", task, finder, runs, results)
    return results


def summary_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """The summary table (header, rows, row classes) shared by the terminal and the page."""
    metric = results["metric"]
    header = ["run", "lr", f"val {metric}", "val loss", "time (s)"]
    rows, classes = [], []

    def shown(value: float | None) -> str:
        if value is None:
            return "—"
        return f"{100 * value:.2f}%" if metric == "accuracy" else f"{value:.4g}"

    for r in results["runs"]:
        rows.append([
            r["label"] + (" (diverged)" if r["diverged"] else ""),
            f"{r['lr']:.3g}",
            shown(r[metric]),
            "—" if r["val_loss"] is None else f"{r['val_loss']:.4f}",
            f"{r['wall_s']:.1f}",
        ])  # fmt: skip
        classes.append("best" if r["label"] == results["best"] else "")
    pub = results["published"]
    if results.get("quick"):  # a slice and 2 epochs: its numbers are not the published ones'
        rows.append([
            "published: Lightning finder, Fashion-MNIST (full run; not comparable to --quick)",
            f"{pub['finder_lr']:.3g}", "—", "—", "",
        ])  # fmt: skip
    else:
        rows.append([
            "published: Lightning finder, Fashion-MNIST", f"{pub['finder_lr']:.3g}",
            f"{100 * pub['val_accuracy']:.2f}%", f"{pub['val_loss']:.4f}", "",
        ])  # fmt: skip
    classes.append("ref")
    return header, rows, classes


def write_report(
    path: Path, task: Task, finder: FinderResult, runs: list[Run], results: dict[str, Any]
) -> Path:
    """The self-contained HTML report of the demo."""
    from lrkit.report import Page
    from lrkit.report.figures import finder_figure, history_figure, lr_figure

    histories = {r.label: r.history for r in runs}
    page = Page(
        title=f"lrkit demo: the finder's LR vs fixed guesses on {task.name}",
        subtitle=(
            f"{num_samples(task.train)} training / {num_samples(task.val)} validation samples, "
            f"{task.epochs} epochs per run, same initial weights and data order for every run. "
            "Range test: "
            f"{results['finder_s']:.1f} s. Whole demo: {results['total_s']:.0f} s."
        ),
    )
    page.heading("Summary")
    header, rows, classes = summary_rows(results)
    page.table(header, rows, classes)
    page.text(
        "The last row is the published experiment this demo reproduces (LeNet on "
        "Fashion-MNIST; Lightning's finder picked 0.0363 in about 12 s). The best run here "
        f"is “{results['best']}”."
        + (
            " This is a --quick run (a small slice of the data, few epochs): a smoke test, not "
            "a reproduction, so the published accuracy and loss are not shown beside it; run "
            "`lrkit demo` without --quick to compare."
            if results.get("quick")
            else ""
        )
    )
    page.heading("The LR range test")
    page.figure(finder_figure(finder))
    suggestion = finder.suggestion
    rules = [
        [
            f"suggestion ({finder.for_schedule})",
            "—" if suggestion is None else f"{suggestion:.3g}",
            finder.suggestion_label,
        ]
    ]
    rules += [[f"rule {m} (raw)", "—" if v is None else f"{v:.3g}", finder.notes.get(m, "")]
              for m, v in finder.suggestions.items()]  # fmt: skip
    page.table(["", "lr", "how"], rules)
    page.text(f"Stopped: {finder.stop_reason}.")
    page.heading("Training curves")
    page.figure(history_figure(histories, task.metric))
    page.heading("Learning rate per step")
    page.figure(lr_figure(histories))
    return page.write(path)
