"""Sweeps: grid expansion and ids, the store, resume after SIGKILL, executors agree, report."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.browser import non_blank_fraction, render
from tests.conftest import make_data, make_model
from typer.testing import CliRunner

import lrkit
from lrkit.cli import app
from lrkit.sweeps import Store, SweepSpec, logspace, run_spec, sweep
from lrkit.sweeps.spec import RunConfig
from lrkit.sweeps.store import owner_identity
from lrkit.tasks import Task, get_task

TINY = {"task": "digits-mlp", "epochs": 1}


def test_logspace_is_geometric_and_inclusive() -> None:
    lrs = logspace(1e-4, 1.0, 5)
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1.0)
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_grid_expansion_is_deterministic_with_stable_ids() -> None:
    spec = SweepSpec(lrs=[0.1, 0.01, 0.1], schedules=["constant", "one_cycle"], seeds=[0, 1],
                     folds=3, **TINY)  # fmt: skip
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 2 * 3  # the repeated LR runs once
    assert [r.id for r in runs] == [r.id for r in spec.expand()]
    assert len({r.id for r in runs}) == len(runs)
    assert (runs[0].lr, runs[0].schedule, runs[0].seed, runs[0].fold) == (0.1, "constant", 0, 0)
    same = RunConfig("digits-mlp", 0.1, "constant", "sgd", 0, 0, 3, 1, sweep=spec.sweep_id)
    assert same.id == runs[0].id
    assert dataclasses.replace(same, seed=1).id != same.id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "nope"}, "unknown task 'nope'"),
        ({"lrs": []}, "lrs is empty"),
        ({"lrs": [0.1, -1.0]}, "finite number > 0"),
        ({"lrs": "around"}, "around-finder"),
        ({"schedules": ["cosin"]}, "unknown schedule 'cosin'"),
        ({"optimizers": ["lion"]}, "unknown optimizer 'lion'"),
        ({"epochs": 0}, "epochs"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"folds": [0, 7]}, r"fold 7 is outside 0\.\.4"),
    ],
)
def test_bad_specs_fail_before_anything_runs(
    change: dict[str, object], message: str, tmp_path: Path
) -> None:
    kwargs: dict[str, object] = {"lrs": [0.1], **TINY} | change
    with pytest.raises(ValueError, match=message):
        sweep(store=tmp_path / "s", progress=False, **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "s" / "lrkit.db").exists()


def test_toml_spec_with_logspace(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text('task = "digits-mlp"\nepochs = 2\nlrs = {logspace = [1e-3, 1e-1, 3]}\n'
                    'seeds = [0, 1]\nschedules = ["constant", "cosine"]\n')  # fmt: skip
    spec = SweepSpec.from_toml(path)
    assert spec.name == "grid"
    assert spec.lrs == pytest.approx([1e-3, 1e-2, 1e-1])
    assert len(spec.expand()) == 12
    path.write_text('task = "digits-mlp"\nepochs = 1\nlrs = [0.1]\nlearning_rate = 3\n')
    with pytest.raises(ValueError, match="unknown sweep fields"):
        SweepSpec.from_toml(path)


def test_store_round_trip_and_claims(tmp_path: Path) -> None:
    store = Store(tmp_path)
    configs = SweepSpec(lrs=[0.1, 0.01], **TINY).expand()
    store.register("s", {"task": "digits-mlp"}, configs)
    ids = [c.id for c in configs]
    assert store.claim(ids) == ids
    history = {"step_lr": [0.1, 0.1], "step_loss": [2.0, 1.5], "diverged": False,
               "epochs": [{"epoch": 1, "train_loss": 1.75, "val_loss": 1.6, "accuracy": 0.5}],
               "stop_reason": "completed", "wall_s": 0.1}  # fmt: skip
    store.finish(ids[0], {"history": history})
    store.fail(ids[1], "RuntimeError: boom")
    runs = {r.id: r for r in store.runs("s")}
    assert runs[ids[0]].status == "done" and runs[ids[0]].summary["final"]["accuracy"] == 0.5
    assert runs[ids[1]].status == "failed" and "boom" in (runs[ids[1]].error or "")
    assert store.metrics(ids[0], "step") == {"lr": [0.1, 0.1], "loss": [2.0, 1.5]}
    assert store.metrics(ids[0], "epoch")["val_loss"] == [1.6]
    assert store.count_metrics() == 4 + 3
    # done runs are never taken again; failed ones are retried
    assert store.claim(ids) == [ids[1]]


def _open_and_register(directory: str, barrier: Any, configs: list[RunConfig]) -> None:
    barrier.wait()
    Store(directory).register("s", {}, configs)


def test_processes_opening_one_new_store_at_once_all_get_in(tmp_path: Path) -> None:
    # Turning a new file to WAL fails at once with "database is locked" while another process
    # opens it; before the retry about 1 round in 4 lost a process (CI saw it once).
    ctx = multiprocessing.get_context("fork")
    configs = SweepSpec(lrs=[0.1, 0.01], **TINY).expand()
    for round_ in range(12):
        directory = str(tmp_path / f"r{round_}")
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open_and_register, args=(directory, barrier, configs))
                 for _ in range(4)]  # fmt: skip
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0], f"round {round_}"
        assert len(Store(directory).runs("s")) == 2


def test_claim_respects_live_owners_and_takes_over_dead_ones(tmp_path: Path) -> None:
    store = Store(tmp_path)
    configs = SweepSpec(lrs=[0.1, 0.01], **TINY).expand()
    store.register("s", {}, configs)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = owner_identity(dead.pid)
    dead.wait()
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET status='running', owner=? WHERE id=?",
                     (owner_identity(os.getppid()), configs[0].id))  # fmt: skip
        conn.execute("UPDATE runs SET status='running', owner=? WHERE id=?",
                     (dead_owner, configs[1].id))  # fmt: skip
    assert store.claim([c.id for c in configs]) == [configs[1].id]


def test_serial_sweep_records_every_run_and_resumes(tmp_path: Path) -> None:
    kwargs = {"lrs": [0.03, 0.3], "schedules": ["constant", "one_cycle"], "store": tmp_path,
              "progress": False, **TINY}  # fmt: skip
    first = sweep(**kwargs)  # type: ignore[arg-type]
    assert first.ran == 4 and first.skipped == 0 and not first.failures
    assert all(r.status == "done" for r in first.runs)
    assert first.report == tmp_path / first.name / "report.html" and first.report.is_file()
    assert (tmp_path / first.name / "sensitivity.png").stat().st_size > 10_000
    again = sweep(**kwargs)  # type: ignore[arg-type]
    assert again.ran == 0 and again.skipped == 4
    steps = len(get_task("digits-mlp").train_loader())
    assert Store(tmp_path).count_metrics() == 4 * (2 * steps + 3)


def test_failed_and_diverged_runs_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    task = get_task("digits-mlp")

    def make_model(seed: int) -> torch.nn.Module:
        if seed == 1:
            raise RuntimeError("no model for seed 1")
        return get_task("digits-mlp").make_model(seed)

    flaky = dataclasses.replace(task, name="flaky-digits", make_model=make_model)
    res = sweep(flaky, lrs=[0.05, 1e4], seeds=[0, 1], epochs=1, store=tmp_path, progress=False)
    by = {(r.config["lr"], r.config["seed"]): r for r in res.runs}
    assert by[(0.05, 0)].status == "done" and not by[(0.05, 0)].diverged
    assert by[(1e4, 0)].status == "done" and by[(1e4, 0)].diverged
    assert by[(0.05, 1)].status == "failed"
    assert "RuntimeError: no model for seed 1" in (by[(0.05, 1)].error or "")
    assert len(res.failures) == 2
    assert res.report is not None


def test_task_objects_only_run_in_this_process(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"module\.path:function"):
        sweep(get_task("digits-mlp"), lrs=[0.1], epochs=1, executor="processes",
              store=tmp_path)  # fmt: skip


def twin_task(data_seed: int) -> Task:
    """Tasks all named "twin" whose data differ with ``data_seed``."""
    return Task(name="twin", make_model=lambda seed: make_model(seed), train=make_data(128,
                seed=data_seed), val=make_data(64, seed=data_seed + 100),
                criterion=torch.nn.CrossEntropyLoss(), batch_size=32, epochs=1)  # fmt: skip


@pytest.mark.parametrize("executor", ["serial", "vectorized"])
def test_two_sweeps_in_one_process_each_train_on_their_own_task(
    executor: str, tmp_path: Path
) -> None:
    # Two Task objects of one name: a task cache kept past the first sweep (keyed by name)
    # trained the second sweep on the first sweep's data.
    finals = {}
    for data_seed in (1, 2):
        res = sweep(twin_task(data_seed), lrs=[0.1], epochs=1, executor=executor,
                    store=tmp_path / str(data_seed), progress=False, report=False)  # fmt: skip
        assert [r.status for r in res.runs] == ["done"]
        finals[data_seed] = res.runs[0].summary["final"]
        own = twin_task(data_seed).fit(0.1, progress=False).final
        for metric, value in own.items():
            assert finals[data_seed][metric] == pytest.approx(value, rel=1e-4), metric
    assert finals[1]["val_loss"] != pytest.approx(finals[2]["val_loss"], rel=1e-3)


def test_sweep_without_the_report_extras_stops_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(ImportError, match=r"pip install 'lrkit\[report\]'.*report=False"):
        sweep("digits-mlp", lrs=[0.1], epochs=1, store=tmp_path, progress=False)
    assert not (tmp_path / "lrkit.db").exists()  # nothing registered, claimed or trained
    res = sweep("digits-mlp", lrs=[0.1], epochs=1, store=tmp_path, progress=False,
                report=False)  # fmt: skip
    assert res.ran == 1 and res.report is None


def test_cli_sweep_without_the_report_extras_names_no_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "mini.toml"
    spec.write_text('task = "digits-mlp"\nepochs = 1\nlrs = [0.1]\n')
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "--no-report" in result.output
    assert not (tmp_path / "s" / "lrkit.db").exists()
    args = ["sweep", str(spec), "--store", str(tmp_path / "s"), "--no-report"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "1 ran" in result.output, result.output
    assert not (tmp_path / "s" / "report.html").exists()


def test_run_spec_runs_the_grid_and_writes_no_report(tmp_path: Path) -> None:
    res = run_spec(SweepSpec(lrs=[0.1], **TINY), store=tmp_path, progress=False)
    assert res.ran == 1 and res.report is None
    assert not (tmp_path / "report.html").exists()


def test_around_finder_spreads_points_around_the_suggestion(tmp_path: Path) -> None:
    res = sweep("digits-mlp", lrs="around-finder:4", epochs=1, store=tmp_path, progress=False,
                report=False)  # fmt: skip
    lrs = sorted(res.lrs)
    assert len(lrs) == 4 and lrs[-1] / lrs[0] == pytest.approx(30)
    assert sorted(r.config["lr"] for r in res.runs) == pytest.approx(lrs)


def epoch_metrics(store: Store) -> dict[tuple[float, int], dict[str, list[float | None]]]:
    return {(r.config["lr"], r.config["seed"]): store.metrics(r.id, "epoch") for r in store.runs()}


BUILDS = "LRKIT_TEST_BUILDS"


def counted_task() -> Task:
    """digits-mlp, noting in ``$LRKIT_TEST_BUILDS`` the PID of each process that builds it."""
    with open(os.environ[BUILDS], "a") as log:
        log.write(f"{os.getpid()}\n")
    return get_task("digits-mlp")


def test_processes_and_ray_give_the_same_results_as_serial_on_the_tasks_built_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrkit.sweeps.pool import start_method

    builds = tmp_path / "builds.txt"
    monkeypatch.setenv(BUILDS, str(builds))
    grid = {"lrs": [0.01, 0.1], "seeds": [0, 1], "progress": False, "report": False,
            "task": "tests.test_sweeps:counted_task", "epochs": 1}  # fmt: skip
    serial = sweep(store=tmp_path / "serial", **grid)  # type: ignore[arg-type]
    procs = sweep(store=tmp_path / "procs", executor="processes", workers=2, **grid)  # type: ignore[arg-type]
    if start_method() == "fork":  # forked workers inherit the task: no build of their own
        assert set(builds.read_text().split()) == {str(os.getpid())}
    before = len(builds.read_text().split())
    on_ray = sweep(store=tmp_path / "ray", executor="ray", workers=2, **grid)  # type: ignore[arg-type]
    expected = epoch_metrics(serial.store)
    assert len(expected) == 4
    assert epoch_metrics(procs.store) == expected
    assert epoch_metrics(on_ray.store) == expected
    assert {r.status for r in on_ray.runs} == {"done"}
    # the Ray actors got the task built here
    assert set(builds.read_text().split()[before:]) == {str(os.getpid())}


KILLABLE = """
import lrkit
lrkit.sweep("digits-mlp", lrs=lrkit.logspace(1e-3, 0.3, 12), epochs=2, store={store!r},
            progress=False, report=False)
"""


def test_sigkill_midway_then_rerun_finishes_every_run_exactly_once(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE.format(store=str(store_dir))])
    store = Store(store_dir)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline:
        time.sleep(0.2)
        if store.path.exists():
            try:
                done = sum(r.status == "done" for r in store.runs())
            except sqlite3.OperationalError:
                continue
            if done >= 3:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    runs = store.runs()
    assert 3 <= sum(r.status == "done" for r in runs) < 12, "kill landed mid-sweep"
    assert any(r.status == "running" for r in runs)  # the run in flight died with it

    res = lrkit.sweep("digits-mlp", lrs=lrkit.logspace(1e-3, 0.3, 12), epochs=2,
                      store=store_dir, progress=False, report=False)  # fmt: skip
    assert res.skipped >= 3 and res.ran + res.skipped == 12
    runs = store.runs()
    assert len(runs) == 12 and all(r.status == "done" for r in runs)
    steps = len(get_task("digits-mlp").train_loader())
    assert store.count_metrics() == 12 * (2 * 2 * steps + 2 * 3)  # none lost, none doubled


def test_report_renders_with_parallel_coordinates_and_sensitivity(tmp_path: Path) -> None:
    res = sweep("digits-mlp", lrs=[0.003, 0.03, 0.3, 1e4], seeds=[0, 1], folds=2, epochs=2,
                store=tmp_path / "s", progress=False)  # fmt: skip
    assert res.report is not None
    shot = tmp_path / "report.png"
    seen = render(res.report, shot, tmp_path)
    assert seen["errors"] == [], seen["errors"]
    assert seen["plots"] == 3 and seen["drawn"] == 3, seen
    assert seen["parcoords"] == 1
    assert seen["tables"] >= 1
    for rect in seen["rects"]:
        assert non_blank_fraction(shot, rect) > 0.02, rect
    text = res.report.read_text()
    assert "fold 0" in text and "fold 1" in text and "Best:" in text


def test_cli_sweep_runs_ls_show_and_report(tmp_path: Path) -> None:
    runner = CliRunner()
    spec = tmp_path / "mini.toml"
    spec.write_text('task = "digits-mlp"\nepochs = 1\nlrs = [0.01, 0.1]\n')
    store = tmp_path / "runs"
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "2 ran, 0 already done" in result.output
    result = runner.invoke(app, ["runs", "ls", str(store)])
    assert result.exit_code == 0 and result.output.count("done") == 2
    run_id = Store(store).runs()[0].id
    result = runner.invoke(app, ["runs", "show", run_id[:6], "--store", str(store)])
    assert result.exit_code == 0 and "val_loss" in result.output and run_id in result.output
    out = tmp_path / "again.html"
    result = runner.invoke(app, ["report", str(store), "-o", str(out)])
    assert result.exit_code == 0 and out.stat().st_size > 100_000
    result = runner.invoke(app, ["sweep", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "no sweep spec" in result.output
    db = Store(store)
    assert json.loads(json.dumps(db.spec(db.resolve_sweep("mini"))))["task"] == "digits-mlp"


def test_vectorized_executor_matches_serial_within_float32_noise(tmp_path: Path) -> None:
    grid = {"lrs": [0.01, 0.03, 0.1], "seeds": [0, 1], "schedules": ["one_cycle"],
            "progress": False, "report": False, "epochs": 2, "task": "digits-mlp"}  # fmt: skip
    serial = sweep(store=tmp_path / "serial", **grid)  # type: ignore[arg-type]
    vec = sweep(store=tmp_path / "vec", executor="vectorized", **grid)  # type: ignore[arg-type]
    ref = {(r.config["lr"], r.config["seed"]): r for r in serial.runs}
    got = {(r.config["lr"], r.config["seed"]): r for r in vec.runs}
    assert ref.keys() == got.keys()
    for key, r in ref.items():
        assert got[key].status == "done" and got[key].diverged == r.diverged
        a, b = got[key].summary["final"], r.summary["final"]
        for metric in b:
            assert a[metric] == pytest.approx(b[metric], rel=2e-3, abs=2e-3), (key, metric)


def test_auto_picks_serial_for_one_core_and_workers_only_when_they_pay() -> None:
    from lrkit.sweeps.executors import choose
    from lrkit.sweeps.pool import STARTUP_S, parallel_pays

    configs = SweepSpec(lrs=[0.1, 0.2], **TINY).expand()
    expected = "vectorized" if torch.cuda.is_available() else "serial"
    assert choose("auto", configs, workers=1) == expected
    spawn, fork = STARTUP_S["spawn"], STARTUP_S["fork"]
    assert not parallel_pays(0.07, 11, 2, spawn)  # 12 tiny runs: spawning costs more
    assert parallel_pays(0.07, 11, 2, fork)  # forked workers are there at once
    assert not parallel_pays(0.02, 11, 2, fork)  # but not for nothing
    for startup in (spawn, fork):
        assert parallel_pays(1.0, 11, 2, startup) and parallel_pays(5.0, 11, 2, startup)


def test_two_processes_on_one_store_run_every_config_once(tmp_path: Path) -> None:
    store_dir = tmp_path / "shared"
    script = KILLABLE.format(store=str(store_dir)).replace("logspace(1e-3, 0.3, 12)",
                                                          "logspace(1e-3, 0.3, 6)")  # fmt: skip
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    store = Store(store_dir)
    runs = store.runs()
    assert len(runs) == 6 and all(r.status == "done" for r in runs)
    steps = len(get_task("digits-mlp").train_loader())
    assert store.count_metrics() == 6 * (2 * 2 * steps + 2 * 3)
