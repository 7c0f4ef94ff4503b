"""Logging to TensorBoard, MLflow and W&B, read back from what each library wrote on disk."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.conftest import make_data, make_model
from torch import nn
from torch.utils.data import DataLoader

import lrkit
from lrkit import schedules as S
from lrkit.loggers import Logger, TensorBoardLogger, log_schedule, make_logger
from lrkit.sweeps import Store, mirror, sweep

# MLflow 3.x on SQLAlchemy 2.1 warns about SQLAlchemy's own deprecated `noload` at every query:
# not lrkit's code, so it is let through here (pytest turns warnings into errors).
MLFLOW_NOISE = "ignore:.*noload.*:DeprecationWarning"


class Recorder:
    """A Logger that keeps what it was sent (and whether it was closed)."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.params: dict[str, Any] = {}
        self.closed = False

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(params)

    def close(self) -> None:
        self.closed = True

    def series(self, name: str) -> list[tuple[int, float]]:
        return [(step, m[name]) for step, m in self.metrics if name in m]


@pytest.fixture(scope="module")
def result() -> lrkit.FinderResult:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loader = DataLoader(make_data(), batch_size=32, shuffle=True)
    return lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), num_steps=30, seed=0,
                         progress=False)  # fmt: skip


def fit_some(loggers: list[Any], epochs: int = 2) -> lrkit.History:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train = DataLoader(make_data(), batch_size=64, shuffle=True)
    val = DataLoader(make_data(64, seed=1), batch_size=64)
    return lrkit.fit(model, opt, train, nn.CrossEntropyLoss(), epochs, val_loader=val, seed=0,
                     schedule=S.cosine(max_lr=0.1, total_steps=8), progress=False,
                     loggers=loggers)  # fmt: skip


# --- TensorBoard --------------------------------------------------------------------------


def scalars(log_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return events


def tb_series(events: Any, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def tb_params(events: Any) -> dict[str, Any]:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    out: dict[str, Any] = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        out[name] = getattr(value, kind)
    return out


def test_finder_curve_goes_to_tensorboard_event_files(
    result: lrkit.FinderResult, tmp_path: Path
) -> None:
    logger = result.log("tensorboard", log_dir=tmp_path / "tb")
    events = scalars(tmp_path / "tb")
    loss = tb_series(events, "finder/loss")
    assert [s for s, _ in loss] == list(range(len(result.lrs)))
    assert [v for _, v in loss] == pytest.approx(result.losses, rel=1e-6)  # float32 on disk
    assert [v for _, v in tb_series(events, "finder/lr")] == pytest.approx(result.lrs, rel=1e-6)
    params = tb_params(events)
    assert params["finder/suggestion"] == pytest.approx(result.suggestion)
    assert params["finder/method"] == "auto"
    assert isinstance(logger, TensorBoardLogger) and logger.log_dir == tmp_path / "tb"


def test_fit_logs_every_step_and_epoch_to_tensorboard(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, run_name="fit")
    history = fit_some([logger])
    logger.close()
    events = scalars(tmp_path / "fit")
    lrs = tb_series(events, "train/lr")
    assert [s for s, _ in lrs] == list(range(len(history.step_lr)))
    assert [v for _, v in lrs] == pytest.approx(history.step_lr, rel=1e-6)
    val = tb_series(events, "epoch/val_loss")
    assert [s for s, _ in val] == [e["epoch"] for e in history.epochs]
    assert [v for _, v in val] == pytest.approx([e["val_loss"] for e in history.epochs], rel=1e-6)
    assert "epoch/accuracy" in events.Tags()["scalars"]
    assert tb_params(events)["fit/schedule"] == "cosine(max_lr=0.1, total_steps=8)"


def test_a_schedule_is_logged_step_by_step(tmp_path: Path) -> None:
    schedule = S.one_cycle(max_lr=0.1, total_steps=50)
    logger = TensorBoardLogger(tmp_path)
    log_schedule(logger, schedule, 50)
    logger.close()
    events = scalars(tmp_path)
    expected = [schedule(t) for t in range(50)]
    assert [v for _, v in tb_series(events, "schedule/lr")] == pytest.approx(expected, rel=1e-6)
    assert len(tb_series(events, "schedule/momentum")) == 50  # one-cycle has its momentum twin
    with pytest.raises(ValueError, match="total_steps must be an integer >= 1"):
        log_schedule(Recorder(), schedule, 0)


# --- the hook and the protocol, without any library ---------------------------------------


def test_fit_leaves_a_given_logger_open_and_sends_it_the_history() -> None:
    recorder = Recorder()
    history = fit_some([recorder])
    assert isinstance(recorder, Logger) and not recorder.closed
    assert recorder.series("train/loss") == list(enumerate(history.step_loss))
    assert recorder.series("epoch/train_loss") == [(e["epoch"], e["train_loss"])
                                                   for e in history.epochs]  # fmt: skip
    assert recorder.params["fit/optimizer"] == "SGD" and recorder.params["fit/epochs"] == 2


def test_fit_without_loggers_is_unchanged() -> None:
    assert fit_some([]).step_lr == fit_some([Recorder()]).step_lr


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: make_logger("neptune"), ValueError, "unknown logger 'neptune'"),
        (lambda: fit_some([42]), TypeError, "a logger is a name"),
        (lambda: mirror("/nonexistent/store", "tensorboard"), ValueError, "no sweep store"),
    ],
)
def test_bad_logger_arguments(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_a_missing_library_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(ImportError, match=r"pip install 'lrkit\[mlflow\]'"):
        make_logger("mlflow")


# --- MLflow -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.mark.filterwarnings(MLFLOW_NOISE)
def test_finder_and_fit_go_to_a_local_mlflow_store(
    result: lrkit.FinderResult, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    logger = result.log("mlflow", tracking_uri=tracking_uri, experiment="finder", run_name="lr")
    run = client.get_run(logger.run_id)  # type: ignore[attr-defined]
    assert run.info.status == "FINISHED" and run.info.run_name == "lr"
    assert float(run.data.params["finder/suggestion"]) == pytest.approx(result.suggestion)
    history = client.get_metric_history(run.info.run_id, "finder/loss")
    assert [m.step for m in history] == list(range(len(result.losses)))
    assert [m.value for m in history] == result.losses  # float64 in MLflow: exact

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)  # a name in fit() takes defaults
    fitted = fit_some(["mlflow"])
    runs = client.search_runs([client.get_experiment_by_name("lrkit").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    lrs = client.get_metric_history(runs[0].info.run_id, "train/lr")
    assert [m.value for m in sorted(lrs, key=lambda m: m.step)] == fitted.step_lr


# --- Weights & Biases (offline) -------------------------------------------------------------


@pytest.fixture
def wandb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    return tmp_path / "wandb_dir"


def wandb_records(run_dir: Path) -> list[Any]:
    """The records of an offline run's ``.wandb`` file (a LevelDB-style log of protobufs)."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    paths = list(run_dir.glob("*.wandb"))
    data = paths[0].read_bytes() if paths else b""
    if len(data) < 7:  # not written yet
        return []
    assert data[:4] == b":W&B" and len(paths) == 1
    pos, block, pending, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if block - pos % block < 7 or kind == 0:  # zero padding to the end of the block
            pos += block - pos % block
            continue
        if pos + 7 + length > len(data):  # the writer is still mid-record: read it later
            break
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a full record, or the last piece of one
            try:
                out.append(wandb_internal_pb2.Record.FromString(pending))
            except DecodeError:  # a record still being written: what came before is whole
                break
    return out


def _key(item: Any) -> str:
    return str(item.key) or ".".join(item.nested_key)  # one of the two is set


def wandb_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(history rows, config) of an offline run, read from its file."""
    rows: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    records = wandb_records(run_dir)
    deadline = time.monotonic() + 30
    # wandb's service process may still be writing the file when finish() has returned: the
    # run is complete on disk once its exit record is there
    while (not records or records[-1].WhichOneof("record_type") != "exit") and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
        records = wandb_records(run_dir)
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            rows.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind in ("run", "config"):
            updates = record.run.config.update if kind == "run" else record.config.update
            config.update({_key(i): json.loads(i.value_json) for i in updates})
    return rows, config


def test_finder_and_fit_go_to_an_offline_wandb_run(
    result: lrkit.FinderResult, wandb_dir: Path
) -> None:
    result.log("wandb", dir=wandb_dir, run_name="finder")
    (run_dir,) = (wandb_dir / "wandb").glob("offline-run-*")
    rows, config = wandb_run(run_dir)
    loss = [(r["finder/step"], r["finder/loss"]) for r in rows if "finder/loss" in r]
    assert loss == list(enumerate(result.losses))
    assert config["finder/suggestion"] == pytest.approx(result.suggestion)

    logger = make_logger("wandb", dir=wandb_dir / "fit")
    history = fit_some([logger])
    logger.close()
    (run_dir,) = (wandb_dir / "fit" / "wandb").glob("offline-run-*")
    rows, config = wandb_run(run_dir)
    assert [r["train/lr"] for r in rows if "train/lr" in r] == history.step_lr
    val = [(r["epoch/step"], r["epoch/val_loss"]) for r in rows if "epoch/val_loss" in r]
    assert val == [(e["epoch"], e["val_loss"]) for e in history.epochs]
    assert config["fit/epochs"] == 2


# --- the sweep mirror ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    directory = tmp_path_factory.mktemp("sweep")
    res = sweep("digits-mlp", lrs=[0.01, 0.1], epochs=2, store=directory, progress=False,
                report=False)  # fmt: skip
    res.store.register("other", {}, [])  # a sweep with no runs: nothing to mirror
    return res.store


def test_mirror_writes_one_tensorboard_run_per_stored_run(store: Store, tmp_path: Path) -> None:
    ids = mirror(store, "tensorboard", log_dir=tmp_path)
    records = store.runs()
    assert sorted(ids) == sorted(r.id for r in records)
    for record in records:
        events = scalars(tmp_path / record.id)
        steps = store.metrics(record.id, "step")
        assert [v for _, v in tb_series(events, "train/loss")] == pytest.approx(steps["loss"])
        val = tb_series(events, "epoch/val_loss")
        assert [s for s, _ in val] == [1, 2]
        assert [v for _, v in val] == pytest.approx(store.metrics(record.id, "epoch")["val_loss"])
        params = tb_params(events)
        assert params["run/lr"] == record.config["lr"] and params["run/id"] == record.id


def test_mirror_leaves_out_unfinished_runs_and_takes_a_factory(store: Store) -> None:
    made: dict[str, Recorder] = {}

    def factory(run_id: str) -> Recorder:
        made[run_id] = Recorder()
        return made[run_id]

    first = store.runs()[0]
    store.fail(first.id, "boom")  # now failed: not mirrored
    try:
        ids = mirror(store.directory, factory)
    finally:
        store.finish(first.id, {"history": _history_of(store, first.id)})
    assert first.id not in ids and len(ids) == len(store.runs()) - 1
    assert all(r.closed for r in made.values())


def _history_of(store: Store, run_id: str) -> dict[str, Any]:
    steps, epochs = store.metrics(run_id, "step"), store.metrics(run_id, "epoch")
    rows = [{"epoch": i + 1, **{k: v[i] for k, v in epochs.items()}}
            for i in range(len(epochs["val_loss"]))]  # fmt: skip
    return lrkit.History(step_lr=steps["lr"], step_loss=steps["loss"],  # type: ignore[arg-type]
                         epochs=rows).to_dict()  # fmt: skip


@pytest.mark.filterwarnings(MLFLOW_NOISE)
def test_mirror_makes_one_mlflow_run_per_stored_run(store: Store, tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    ids = mirror(store, "mlflow", tracking_uri=tracking_uri, experiment="sweep")
    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(ids)
    for run in runs:
        record = store.run(run.info.run_name)
        assert float(run.data.params["run/lr"]) == record.config["lr"]
        assert run.data.metrics["epoch/val_loss"] == record.summary["final"]["val_loss"]


def test_mirror_makes_one_offline_wandb_run_per_stored_run(store: Store, wandb_dir: Path) -> None:
    ids = mirror(store, "wandb", dir=wandb_dir)
    run_dirs = list((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == len(ids) == 2
    for run_dir in run_dirs:
        rows, config = wandb_run(run_dir)
        record = store.run(config["run/id"])
        losses = [r["train/loss"] for r in rows if "train/loss" in r]
        assert losses == store.metrics(record.id, "step")["loss"]
        assert config["run/lr"] == record.config["lr"]
