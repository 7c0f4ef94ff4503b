"""A sweep on a real multi-node Ray cluster on this machine that loses a node, then its driver.

The test starts a head (no CPUs) and two worker nodes of 2 CPUs each (Ray's own
``cluster_utils.Cluster``: separate raylet processes), runs a 24-run sweep from a driver
process, removes one worker node mid-sweep, and checks that every run is stored exactly once
with the results of a serial sweep; then it SIGKILLs a second driver mid-sweep and resumes.
Skipped, with Ray's own error, only when Ray cannot start here.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tests.conftest import make_data, make_model

from lrkit.sweeps import Store, sweep
from lrkit.tasks import Task

ROOT = Path(__file__).resolve().parents[1]
PACE = "LRKIT_TEST_PACE_S"
GRID = {"lrs": [0.01 * 1.5**i for i in range(12)], "seeds": [0, 1], "epochs": 1}
DRIVER = """
import sys
import lrkit
lrkit.sweep("tests.test_sweeps_ray_cluster:paced_task", lrs={lrs!r}, seeds=[0, 1], epochs=1,
            executor="ray", address=sys.argv[1], store=sys.argv[2], progress=False,
            report=False)
"""


def _paced_model(seed: int) -> torch.nn.Module:
    time.sleep(float(os.environ.get(PACE, "0")))  # on the cluster: runs long enough to kill
    return make_model(seed)


def paced_task() -> Task:
    """A small task whose runs take ``$LRKIT_TEST_PACE_S`` seconds more on the cluster."""
    return Task(name="paced", make_model=_paced_model, train=make_data(96),
                val=make_data(32, seed=1), criterion=torch.nn.CrossEntropyLoss(),
                batch_size=32, epochs=1)  # fmt: skip


def _done(store: Store) -> int:
    if not store.path.exists():
        return 0
    try:
        return sum(r.status == "done" for r in store.runs())
    except (sqlite3.OperationalError, ValueError):
        return 0


def _wait_until(store: Store, done: int, proc: subprocess.Popen[bytes], limit: float) -> None:
    deadline = time.time() + limit
    while time.time() < deadline and _done(store) < done and proc.poll() is None:
        time.sleep(0.2)
    assert _done(store) >= done, f"the sweep did not reach {done} runs (rc={proc.poll()})"


def epoch_metrics(store: Store) -> dict[tuple[float, int], dict[str, list[float | None]]]:
    return {(r.config["lr"], r.config["seed"]): store.metrics(r.id, "epoch") for r in store.runs()}


def _check_complete(store: Store, reference: Store) -> None:
    runs = store.runs()
    assert len(runs) == 24 and all(r.status == "done" for r in runs)
    assert store.count_metrics() == reference.count_metrics()  # none lost, none doubled
    assert epoch_metrics(store) == epoch_metrics(reference)


def test_a_sweep_survives_a_lost_node_and_a_killed_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (the ray extra)")
    import ray
    from ray.cluster_utils import Cluster

    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", ""), str(ROOT / "src")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv(PACE, "0.6")
    try:
        cluster = Cluster(initialize_head=True,
                          head_node_args={"num_cpus": 0, "include_dashboard": False})  # fmt: skip
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Ray cannot start a cluster here: {exc}")
    drivers: list[subprocess.Popen[bytes]] = []
    try:
        doomed = cluster.add_node(num_cpus=2)
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        monkeypatch.delenv(PACE)  # the serial reference below runs at full speed
        reference = sweep(
            "tests.test_sweeps_ray_cluster:paced_task",
            store=tmp_path / "serial",
            progress=False,
            report=False,
            **GRID,
        )  # type: ignore[arg-type]
        assert reference.ran == 24 and not reference.failures
        code = DRIVER.format(lrs=GRID["lrs"])
        env = os.environ | {"PYTHONPATH": path}

        # a worker node is lost mid-sweep: its runs go to the other node, none is stored twice
        lost = Store(tmp_path / "lost-node")
        driver = subprocess.Popen([sys.executable, "-c", code, cluster.address,
                                   str(lost.directory)], env=env, cwd=ROOT)  # fmt: skip
        drivers.append(driver)
        _wait_until(lost, 4, driver, 180)
        cluster.remove_node(doomed)
        assert driver.wait(timeout=240) == 0
        assert 4 <= _done(lost)
        _check_complete(lost, reference.store)

        # the driver is killed mid-sweep; a new driver resumes and finishes
        killed = Store(tmp_path / "killed-driver")
        driver = subprocess.Popen([sys.executable, "-c", code, cluster.address,
                                   str(killed.directory)], env=env, cwd=ROOT)  # fmt: skip
        drivers.append(driver)
        _wait_until(killed, 3, driver, 180)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        before = _done(killed)
        assert 3 <= before < 24, "the kill landed mid-sweep"
        resumed = subprocess.run([sys.executable, "-c", code, cluster.address,
                                  str(killed.directory)], env=env, cwd=ROOT,
                                 timeout=240)  # fmt: skip
        assert resumed.returncode == 0
        _check_complete(killed, reference.store)
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
