"""Keras 3 (torch backend): an lrkit schedule as a LearningRateSchedule, exact, and saved
and loaded through its spec."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere

import numpy as np
import pytest
import torch

from lrkit import schedules as S
from lrkit.integrations.keras import to_keras

keras = pytest.importorskip("keras", reason="keras is not installed (lrkit[keras])")

SCHEDULES = [
    S.one_cycle(max_lr=0.1, total_steps=200),
    S.hf("cosine", 1e-3, num_warmup_steps=20, num_training_steps=200),
    S.timm_cosine(1e-3, t_initial=50, warmup_t=5, cycle_limit=3, cycle_decay=0.5),
    S.parse("warmup(sgdr(max_lr=0.01, cycle_steps=30, cycle_mult=2), warmup_steps=10)"),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_the_keras_schedule_gives_exactly_the_lrkit_value(schedule: S.Schedule) -> None:
    lr = to_keras(schedule)
    assert isinstance(lr, keras.optimizers.schedules.LearningRateSchedule)
    for t in range(0, 220, 7):
        assert lr(t) == schedule(t)


@pytest.mark.parametrize(
    "make",
    [
        int,
        np.int64,
        np.int32,
        np.uint16,
        lambda t: np.array(t),
        lambda t: torch.tensor(t),
        lambda t: torch.tensor(t, dtype=torch.int32),
        lambda t: keras.ops.convert_to_tensor(t, dtype="int64"),
        lambda t: keras.Variable(t, dtype="int64", trainable=False),
    ],
)
def test_steps_of_any_integer_type_are_accepted(make: object) -> None:
    schedule = S.cosine(max_lr=1.0, total_steps=100)
    assert to_keras(schedule)(make(37)) == schedule(37)  # type: ignore[operator]


@pytest.mark.parametrize("step", [2.5, np.float32(3.0), torch.tensor(3.0), torch.tensor([1, 2])])
def test_a_step_that_is_not_one_integer_is_refused(step: object) -> None:
    with pytest.raises(ValueError, match="step must be an integer"):
        to_keras(S.constant(0.1))(step)


def test_config_round_trips_through_the_spec() -> None:
    schedule = SCHEDULES[1]
    lr = to_keras(schedule)
    config = lr.get_config()
    assert config == {"schedule": schedule.to_dict()}
    assert type(lr).from_config(config).schedule == schedule
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(lr))
    assert restored.schedule == schedule and restored(57) == schedule(57)


def test_a_keras_optimizer_follows_the_schedule_and_saves_it() -> None:
    schedule = S.hf("linear", 0.1, num_warmup_steps=3, num_training_steps=10)
    opt = keras.optimizers.SGD(learning_rate=to_keras(schedule))
    w = keras.Variable(np.zeros(1, dtype="float32"))
    expected = 0.0
    for t in range(10):
        assert float(opt.learning_rate) == pytest.approx(schedule(t), rel=1e-6)  # float32
        opt.apply_gradients([(keras.ops.ones(1), w)])
        expected -= schedule(t)
        assert float(w.value.detach()[0]) == pytest.approx(expected, rel=1e-5)
    config = opt.get_config()
    assert keras.optimizers.schedules.deserialize(config["learning_rate"]).schedule == schedule
    again = keras.optimizers.SGD.from_config(config)
    v = keras.Variable(np.zeros(1, dtype="float32"))
    again.apply_gradients([(keras.ops.ones(1), v)])
    assert float(again.learning_rate) == pytest.approx(schedule(1), rel=1e-6)
