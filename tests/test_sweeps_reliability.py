"""Sweeps that never mix, never skip wrongly and never run what is not a task (issue 16, items
4-7): sweep identity, claims with an owner that cannot be reused, the spec resolved before
the first run, the executors' settings checked before any claim, workers that die with the
sweep."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from tests.conftest import make_data, make_model
from typer.testing import CliRunner

from lrkit.cli import app
from lrkit.sweeps import Store, SweepSpec, sweep
from lrkit.tasks import Task

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
CALLS: list[str] = []


def quiet(**kwargs: object) -> dict[str, object]:
    return {"progress": False, "report": False, "task": "digits-mlp", "epochs": 1} | kwargs


# ---------------------------------------------------------------- item 4: sweep identity


def test_a_second_spec_overlapping_the_first_runs_and_reports_its_own_runs(
    tmp_path: Path,
) -> None:
    first = sweep(lrs=[0.03, 0.3], store=tmp_path, name="a", **quiet())  # type: ignore[arg-type]
    second = sweep(lrs=[0.03], store=tmp_path, name="b", **quiet())  # type: ignore[arg-type]
    assert first.ran == 2
    assert second.ran == 1 and second.skipped == 0  # was "0 ran, 1 already done"
    assert [r.status for r in second.runs] == ["done"]  # was: a report of 0 runs
    assert second.name != first.name and len(Store(tmp_path).sweeps()) == 2


def test_an_edited_spec_is_a_new_sweep_whose_report_never_mixes_in_the_old_runs(
    tmp_path: Path,
) -> None:
    two = sweep(lrs=[0.1], store=tmp_path, name="s", **quiet(epochs=2))  # type: ignore[arg-type]
    one = sweep(lrs=[0.1], store=tmp_path, name="s", **quiet(epochs=1))  # type: ignore[arg-type]
    assert one.ran == 1 and one.name != two.name
    assert [r.config["epochs"] for r in one.runs] == [1]
    assert [r.config["epochs"] for r in two.runs] == [2]
    assert SweepSpec(task="digits-mlp", lrs=[0.1], epochs=2, name="s").sweep_id == two.name
    again = sweep(lrs=[0.1], store=tmp_path, name="s", **quiet(epochs=2))  # type: ignore[arg-type]
    assert again.ran == 0 and again.skipped == 1 and again.name == two.name


def test_every_result_changing_field_changes_the_sweep_identity() -> None:
    base = {"task": "digits-mlp", "lrs": [0.1], "epochs": 1, "name": "s"}
    ids = {SweepSpec(**base).sweep_id}  # type: ignore[arg-type]
    for change in ({"epochs": 2}, {"lrs": [0.2]}, {"seeds": [1]}, {"folds": 2},
                   {"data_dir": "/data"}, {"schedules": ["cosine"]}, {"optimizers": ["adam"]},
                   {"task": "mnist-lenet"}):  # fmt: skip
        ids.add(SweepSpec(**(base | change)).sweep_id)  # type: ignore[arg-type]
    assert len(ids) == 9
    assert SweepSpec(**base).sweep_id == SweepSpec(**base).sweep_id  # type: ignore[arg-type]


def test_report_and_runs_name_the_sweeps_of_a_store_instead_of_picking_one(
    tmp_path: Path,
) -> None:
    a = sweep(lrs=[0.1], store=tmp_path, name="a", **quiet(report=True))  # type: ignore[arg-type]
    b = sweep(lrs=[0.1], store=tmp_path, name="b", **quiet(report=True))  # type: ignore[arg-type]
    assert a.report is not None and b.report is not None and a.report != b.report
    assert a.report.is_file() and b.report.is_file()  # one report per sweep
    for args in (["report", str(tmp_path)], ["runs", "ls", str(tmp_path)],
                 ["runs", "best", str(tmp_path)]):  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert a.name in result.output and b.name in result.output and "--sweep" in result.output
    result = runner.invoke(app, ["runs", "ls", str(tmp_path), "--sweep", "b"])
    assert result.exit_code == 0 and b.name in result.output and a.name not in result.output
    out = tmp_path / "a.html"
    result = runner.invoke(app, ["report", str(tmp_path), "--sweep", "a", "-o", str(out)])
    assert result.exit_code == 0 and out.is_file()


# ---------------------------------------------------------------- item 5: claims


HOLDER = """
import sys, time
from lrkit.sweeps import Store, SweepSpec
spec = SweepSpec.from_toml(sys.argv[1])
store = Store(sys.argv[2])
store.register(spec.sweep_id, spec.to_dict(), spec.expand())
store.claim([c.id for c in spec.expand()])
print("claimed", flush=True)
time.sleep(120)
"""


def test_a_second_process_says_runs_are_running_elsewhere_and_can_take_them_over(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "mini.toml"
    spec.write_text('task = "digits-mlp"\nepochs = 1\nlrs = [0.01, 0.1]\n')
    store = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(spec), str(store)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        args = ["sweep", str(spec), "--store", str(store), "--no-report"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        assert "0 ran, 0 already done, 2 running elsewhere" in text  # was "2 already done"
        assert "--take-over" in text
        result = runner.invoke(app, [*args, "--take-over"])
        assert "2 ran" in result.output and result.exit_code == 0, result.output
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_claim_whose_pid_now_belongs_to_another_process_is_taken_over(tmp_path: Path) -> None:
    store = Store(tmp_path)
    configs = SweepSpec(lrs=[0.1], task="digits-mlp", epochs=1).expand()
    store.register("s", {}, configs)
    claimer = subprocess.run(
        [sys.executable, "-c", "import sys; from lrkit.sweeps import Store; "
         f"Store(sys.argv[1]).claim([{configs[0].id!r}])", str(tmp_path)],
        check=True,
    )  # fmt: skip
    assert claimer.returncode == 0
    live = os.getppid()  # a live process that is not the claim's owner: a reused PID
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET pid = ?", (live,))
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        if "owner" in columns:  # the owner's PID now names another live process
            (owner,) = conn.execute("SELECT owner FROM runs").fetchone()
            host, _, rest = owner.partition("/")
            conn.execute("UPDATE runs SET owner = ?", (f"{host}/{live}/{rest.partition('/')[2]}",))
    assert store.claim([configs[0].id]) == [configs[0].id]  # was skipped forever


def test_claims_from_another_host_expire_with_their_heartbeat() -> None:
    from lrkit.sweeps.store import LEASE_S, _owner_alive

    now = time.time()
    assert _owner_alive("elsewhere.example/123/456", now - 1, now)
    assert not _owner_alive("elsewhere.example/123/456", now - LEASE_S - 1, now)
    assert not _owner_alive(f"{socket.gethostname()}/{os.getpid()}/not-my-start", now, now)


# ---------------------------------------------------------------- item 6: resolved up front


def not_a_task() -> int:
    """A function that is not a task: a sweep must never call it."""
    CALLS.append("called")
    return 0


def _broken_model(seed: int) -> torch.nn.Module:
    raise RuntimeError("this model cannot be built")


def broken_task() -> Task:
    """A task every run of which fails."""
    return Task(name="broken", make_model=_broken_model, train=make_data(64),
                val=make_data(32, seed=1), criterion=torch.nn.CrossEntropyLoss(),
                batch_size=32, epochs=1)  # fmt: skip


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("nosuchmod:f", "cannot import"),
        ("os:system", "not a Python function"),
        ("tests.test_sweeps_reliability:nothing_here", "has no attribute"),
        ("tests.test_sweeps_reliability:not_a_task", "not annotated to return a Task"),
    ],
)
def test_a_task_that_is_not_a_task_fails_before_any_run_and_is_never_called(
    task: str, message: str, tmp_path: Path
) -> None:
    CALLS.clear()
    with pytest.raises(ValueError, match=message):
        sweep(lrs=[0.1, 0.2], store=tmp_path, **quiet(task=task))  # type: ignore[arg-type]
    assert CALLS == [] and not (tmp_path / "lrkit.db").exists()


def test_a_sweep_where_every_run_fails_exits_non_zero(tmp_path: Path) -> None:
    spec = tmp_path / "broken.toml"
    spec.write_text('task = "tests.test_sweeps_reliability:broken_task"\nepochs = 1\n'
                    "lrs = [0.01, 0.1]\n")  # fmt: skip
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(tmp_path / "s")])
    assert result.exit_code == 1, result.output
    assert "every run" in result.output and "cannot be built" in result.output


UNGUARDED = """
import lrkit
lrkit.sweep("digits-mlp", lrs=[0.01, 0.1], epochs=1, executor="processes", workers=2,
            store={store!r}, progress=False, report=False)
print("finished")
"""


def _run_script(script: Path, method: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"LRKIT_START_METHOD": method}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, cwd=script.parent, env=env)  # fmt: skip


def test_processes_from_a_script_without_a_main_guard_say_what_to_do(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED.format(store=str(tmp_path / "s")))
    proc = _run_script(script, "spawn")
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr and "line 3" in proc.stderr
    assert proc.stdout.count("finished") == 0 and not (tmp_path / "s" / "lrkit.db").exists()
    body = textwrap.indent(UNGUARDED.replace("import lrkit", ""), "    ")
    guarded = "\n".join(["import lrkit", 'if __name__ == "__main__":', body])
    script.write_text(guarded.format(store=str(tmp_path / "s")))
    proc = _run_script(script, "spawn")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("finished") == 1  # the workers did not run the script again


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is the default on Linux")
def test_processes_from_a_script_without_a_main_guard_run_on_forked_workers(
    tmp_path: Path,
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED.format(store=str(tmp_path / "s")))
    proc = _run_script(script, "fork")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("finished") == 1  # forked workers never import the script
    runs = Store(tmp_path / "s").runs()
    assert len(runs) == 2 and {r.status for r in runs} == {"done"}


def test_a_bad_start_method_is_named_before_any_run_is_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRKIT_START_METHOD", "threads")
    for executor in ("processes", "auto"):
        with pytest.raises(ValueError, match=r"LRKIT_START_METHOD must be one of .*'threads'"):
            sweep("digits-mlp", lrs=[0.01, 0.1], epochs=1, executor=executor, workers=2,
                  store=tmp_path / "s", progress=False, report=False)  # fmt: skip
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- item 7: executors


def _sleepy_model(seed: int) -> torch.nn.Module:
    time.sleep(60)
    return make_model(seed)


def slow_task() -> Task:
    """Runs that take a minute (building the model sleeps)."""
    return Task(name="slow", make_model=_sleepy_model, train=make_data(64),
                val=make_data(32, seed=1), criterion=torch.nn.CrossEntropyLoss(),
                batch_size=32, epochs=1)  # fmt: skip


KILLED_POOL = """
import lrkit
if __name__ == "__main__":
    lrkit.sweep("tests.test_sweeps_reliability:slow_task", lrs=[0.01, 0.02, 0.03, 0.04],
                epochs=1, executor="processes", workers=2, store={store!r}, progress=False,
                report=False)
"""


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def _pool_workers(parent: int) -> list[int]:
    """The sweep's worker processes: its children that are spawned pool workers or copies
    of itself (forked), not the resource tracker."""
    pids = []
    own = Path(f"/proc/{parent}/cmdline").read_bytes()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and (b"spawn_main" in cmdline or cmdline == own):
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_exit_when_the_sweep_process_is_killed(method: str, tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(KILLED_POOL.format(store=str(tmp_path / "s")))
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), *_pythonpath()]),
                        "LRKIT_START_METHOD": method}  # fmt: skip
    parent = subprocess.Popen([sys.executable, str(script)], env=env, cwd=ROOT)
    try:
        deadline = time.time() + 120
        workers: list[int] = []
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = _pool_workers(parent.pid)
        assert len(workers) == 2, "the pool did not start"
        time.sleep(3)  # the workers are inside their minute-long runs
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.25)
    left = [p for p in workers if Path(f"/proc/{p}").exists()]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "pool workers outlived the killed sweep"


def test_a_bad_ray_address_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    code = ("import lrkit\ntry:\n    lrkit.sweep('digits-mlp', lrs=[0.1], epochs=1, "
            f"executor='ray', address='127.0.0.1:9', store={str(tmp_path / 's')!r}, "
            "progress=False, report=False)\n"
            "except ValueError as exc:\n    print(exc)\n")  # fmt: skip
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("a bad Ray address still hangs")
    assert time.monotonic() - started < 30
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in proc.stdout, proc.stdout + proc.stderr
    assert not (tmp_path / "s" / "lrkit.db").exists()


def test_ray_without_an_address_starts_its_own_cluster_even_beside_a_running_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ray.init() without an address joins a cluster that `ray start` left on this machine,
    # and then refuses num_cpus: the sweep failed after its runs were claimed
    ray = pytest.importorskip("ray")
    from lrkit.sweeps.pool import RayBackend

    seen: dict[str, object] = {}

    def init(**kwargs: object) -> None:
        seen.update(kwargs)
        raise RuntimeError("init seen")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    config = SweepSpec(task="digits-mlp", lrs=[0.1], epochs=1).expand()[0]
    with pytest.raises(RuntimeError, match="init seen"):
        RayBackend(None).start(config, 2)
    assert seen["address"] == "local" and seen["num_cpus"] == 2


@pytest.mark.parametrize("workers", [-1, 0])
def test_bad_workers_fail_before_any_run_is_claimed(workers: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        sweep(lrs=[0.1], store=tmp_path, executor="processes", workers=workers, **quiet())  # type: ignore[arg-type]
    assert not (tmp_path / "lrkit.db").exists()
    spec = tmp_path / "mini.toml"
    spec.write_text('task = "digits-mlp"\nepochs = 1\nlrs = [0.1]\n')
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(tmp_path / "c"),
                                 "--executor", "processes", "--workers", str(workers)])  # fmt: skip
    assert result.exit_code == 2 and "workers" in result.output
    assert not (tmp_path / "c" / "lrkit.db").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="forked workers are Linux's start method")
def _gone(pid: int | None) -> bool:
    """Whether a worker process has exited, asked of the OS (/proc): multiprocessing's own
    view can keep a child "alive" when another thread (the pool's manager) reaped it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited, unreaped


def test_forked_workers_that_ignore_sigterm_are_killed_when_the_sweep_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A forked worker inherits the parent's signal handlers (Ray's driver, for one, installs
    a SIGTERM handler); closing before the workers are up terminates them, and one that
    ignores SIGTERM must still not outlive the sweep."""
    import multiprocessing
    import signal

    from lrkit.sweeps import executors, pool
    from lrkit.sweeps.run import TaskResolver

    monkeypatch.setenv("LRKIT_START_METHOD", "fork")
    monkeypatch.setattr(pool, "STOP_S", 0.5)
    configs = SweepSpec(task="digits-mlp", lrs=[0.1, 0.01], epochs=1).expand()
    before = set(multiprocessing.active_children())
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        outcomes = executors.processes(configs, TaskResolver(), 2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    forked = {p.pid for p in set(multiprocessing.active_children()) - before}
    assert forked, "no worker was forked"
    outcomes._backend.warmed = False  # type: ignore[attr-defined]  # the terminate path
    outcomes.close()
    assert all(_gone(pid) for pid in forked)


def test_forked_workers_stop_when_the_outcomes_are_closed_before_the_first_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forked workers exist from the moment the executor is made; a sweep that fails before
    its first outcome (a progress bar that raises, Ctrl-C) closes the outcomes unstarted, and
    a plain generator's ``finally`` never runs then: the workers must stop anyway."""
    import multiprocessing

    from lrkit.sweeps import executors
    from lrkit.sweeps.run import TaskResolver

    monkeypatch.setenv("LRKIT_START_METHOD", "fork")
    configs = SweepSpec(task="digits-mlp", lrs=[0.1, 0.01, 0.05], epochs=1).expand()
    before = set(multiprocessing.active_children())
    outcomes = executors.processes(configs, TaskResolver(), 2)
    forked = {p.pid for p in set(multiprocessing.active_children()) - before}
    assert forked, "no worker was forked"
    outcomes.close()
    deadline = time.monotonic() + 60
    while not all(_gone(pid) for pid in forked) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in forked)
