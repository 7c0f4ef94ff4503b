"""lrkit.tune: the chosen LR, the interval, pruning and its repacking, the store, fallbacks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.tuning import TuneResult
from lrkit.tuning.interval import (
    BASE_HALF_WIDTH,
    UNMEASURED_SPREAD,
    candidate_interval,
    doubtful,
    range_test_size,
)
from lrkit.tuning.prune import rungs, to_stop
from lrkit.vectorized import fit_many

FAST = {"num_steps": 20}


def _data(n: int = 160, dtype: torch.dtype = torch.float32) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g, dtype=dtype)
    y = (x @ torch.randn(6, 3, generator=g, dtype=dtype)).argmax(1)
    cut = n * 3 // 4
    train = DataLoader(TensorDataset(x[:cut], y[:cut]), batch_size=30, shuffle=True,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    return train, DataLoader(TensorDataset(x[cut:], y[cut:]), batch_size=40)


def make(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def _tune(**kwargs: Any) -> TuneResult:
    train, val = _data()
    options = {"epochs": 3, "k": 3, "finder_runs": 2, "finder_kwargs": FAST, "progress": False}
    return lrkit.tune(make, train, val, nn.CrossEntropyLoss(), **(options | kwargs))


def test_chosen_lr_is_the_best_seed_mean_candidate_and_candidates_lie_in_the_interval() -> None:
    res = _tune(seeds=(0, 1), k=4, prune=False)
    means = {lr: res.mean_metric(lr) for lr in res.by_lr()}
    best = max((m, lr) for lr, m in means.items() if m is not None)[1]
    assert res.lr == best
    lo, hi = res.interval
    assert all(lo * (1 - 1e-9) <= c.lr <= hi * (1 + 1e-9) for c in res.candidates)
    assert len(res.candidates) == 8 and res.executor == "vectorized"
    assert res.model is not None and res.state_dict is not None


def test_interval_is_wider_when_the_finder_is_unsure() -> None:
    model = make(0)
    train, _ = _data()
    crit = nn.CrossEntropyLoss()
    res = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), 1e-3), train, crit, seed=0,
                        progress=False, **FAST)  # fmt: skip
    sure = candidate_interval(res, "constant", "sgd")
    res.spread = {res.method: 0.6}
    res.run_caveats = ["something odd"]
    from dataclasses import replace

    unsure = candidate_interval(replace(res, curves=res.curves * 2), "constant", "sgd")
    assert unsure.decades > sure.decades
    res.suggestions = {}
    fallback = candidate_interval(res, "constant", "sgd")
    assert fallback.center is None and "no suggestion" in fallback.reason


def test_prune_rule_keeps_the_lr_just_above_the_leader_and_stops_diverged() -> None:
    errors = {0.001: 0.5, 0.01: 0.2, 0.1: 0.6, 1.0: 0.9, 10.0: math.inf}
    stop = to_stop(errors)
    assert 10.0 in stop  # diverged
    assert 0.1 in errors and 0.1 not in stop  # the next LR above the leader (short horizon)
    assert 1.0 in stop


def test_prune_rule_keeps_the_lr_just_below_the_leader_outside_the_better_half() -> None:
    # leader 0.1; better half (3 of 6): 0.1, 1.0, 3.0; 0.01 is behind but next below the
    # leader, where overfitting tasks find their winner at the end of the budget
    errors = {0.001: 0.9, 0.01: 0.8, 0.1: 0.2, 1.0: 0.3, 3.0: 0.4, 10.0: 0.5}
    assert to_stop(errors) == {0.001, 10.0}


def test_rungs_are_a_quarter_and_half_of_the_budget() -> None:
    assert rungs(9) == (2, 4) and rungs(4) == (1, 2) and rungs(3) == (1,)
    assert rungs(2) == (1,) and rungs(1) == ()


def test_range_test_is_three_runs_only_when_they_cost_at_most_half_a_run() -> None:
    assert range_test_size(10_000, None, None) == 3
    assert range_test_size(600, None, None) == 3  # 3 x 100 steps = half of 600
    assert range_test_size(599, None, None) == 1
    assert range_test_size(120, None, 20) == 3  # 3 x 20 steps = half of 120
    assert range_test_size(100, 2, None) == 2  # what the user set is kept


def test_tune_sizes_its_range_test_to_the_budget_and_widens_a_single_runs_interval() -> None:
    short = _tune(finder_runs=None, epochs=1, k=2)  # 4 steps a run: one 20-step range test
    assert short.finder.runs == 1
    assert short.cost == pytest.approx(20 / 4 + sum(c.stopped_at for c in short.candidates))
    long = _tune(finder_runs=None, epochs=30, k=2)  # 120 steps a run: three fit in half
    assert long.finder.runs == 3
    one = candidate_interval(short.finder, "constant", "sgd")
    assert "one run" in one.reason
    assert one.decades >= 2 * (BASE_HALF_WIDTH + UNMEASURED_SPREAD) - 1e-9


def test_a_doubtful_single_range_test_gets_two_more_runs_equal_to_one_three_run_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lrkit.tuning.search as search

    monkeypatch.setattr(search, "doubtful", lambda result, schedule: True)
    res = _tune(finder_runs=None, epochs=1, k=2)
    assert res.finder.runs == 3
    assert any("2 more were run" in c for c in res.caveats)
    train, _ = _data()
    model = make(0)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    three = lrkit.find_lr(model, opt, train, nn.CrossEntropyLoss(), runs=3, seed=0,
                          progress=False, **FAST)  # fmt: skip
    assert [c.losses for c in res.finder.curves] == [c.losses for c in three.curves]
    assert res.finder.suggestions == three.suggestions and res.finder.spread == three.spread
    candidates = sum(c.stopped_at for c in res.candidates)
    assert res.cost == pytest.approx(3 * 20 / 4 + candidates)  # the first run is not redone
    given = _tune(finder_runs=1, epochs=1, k=2)  # what the user set is not repeated
    assert given.finder.runs == 1


def test_range_test_cost_counts_each_runs_own_steps_up_to_where_it_stopped() -> None:
    res = _tune(finder_runs=3, epochs=2, k=2,
                finder_kwargs={"num_steps": 40, "end_lr": 1e6})  # fmt: skip
    stops = [c.stop_step for c in res.finder.curves]
    assert all(s is not None for s in stops)  # every run diverged before its 40 steps
    ran = sum(s + 1 for s in stops if s is not None)
    candidates = sum(c.stopped_at for c in res.candidates) / 2
    assert res.cost == pytest.approx(ran / (2 * 4) + candidates)


def test_a_stored_tune_is_read_back_only_under_the_same_pruning_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lrkit.tuning.search as search
    from lrkit.tuning.training import _Round

    train, val = _data()
    problem = search._problem(make, train, val, nn.CrossEntropyLoss(), None, None, None, None)
    pruned, unpruned = (_Round(problem, "constant", 2, (0,), p, None, False) for p in (True, False))
    before = search._identity(pruned), search._identity(unpruned)
    monkeypatch.setattr(search, "RULE", "another rule")
    assert search._identity(pruned) != before[0]
    assert search._identity(unpruned) == before[1]  # unpruned runs do not depend on it


def test_doubtful_means_no_suggestion_or_two_caveats() -> None:
    class Reading:  # what doubtful reads of a FinderResult
        def __init__(self, lr: float | None, caveats: list[str]) -> None:
            self.lr, self.caveats = lr, caveats

        def suggestion_for(self, schedule: str) -> float | None:
            return self.lr

    def doubt(lr: float | None, caveats: list[str]) -> bool:
        return doubtful(cast(Any, Reading(lr, caveats)), "constant")

    assert not doubt(0.01, []) and not doubt(0.01, ["tiny data"])
    assert doubt(0.01, ["tiny data", "estimates disagree"])
    assert doubt(None, [])


def test_tune_keeps_only_the_models_of_lrs_that_can_still_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lrkit.tuning.search as search
    from lrkit.tuning.training import _Round

    rounds: list[_Round] = []

    class Watched(_Round):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            rounds.append(self)

    monkeypatch.setattr(search, "_Round", Watched)
    res = _tune(seeds=(0, 1), k=4, prune=False)
    (state,) = rounds
    assert res.lr is not None and res.model is not None
    means = {lr: res.mean_metric(lr) for lr in res.by_lr()}
    best = max(m for m in means.values() if m is not None)
    kept = {lr for lr, _ in state.models}
    assert kept == {lr for lr, m in means.items() if m == best}  # not K x seeds models
    assert len(state.models) == 2 * len(kept)


def test_pruning_stops_a_diverged_member_and_saves_compute() -> None:
    train, val = _data()
    res = lrkit.tune(make, train, val, nn.CrossEntropyLoss(), epochs=3, k=5, progress=False,
                     finder_runs=1, finder_kwargs={"num_steps": 20, "end_lr": 1e4})  # fmt: skip
    trained = sum(c.stopped_at / res.epochs for c in res.candidates)
    assert any(c.diverged or c.pruned for c in res.candidates)
    assert trained < 5
    full = lrkit.tune(make, train, val, nn.CrossEntropyLoss(), epochs=3, k=5, progress=False,
                      prune=False, finder_runs=1,
                      finder_kwargs={"num_steps": 20, "end_lr": 1e4})  # fmt: skip
    assert res.cost < full.cost


def test_fit_many_prune_repacks_and_survivors_match_the_unpruned_run() -> None:
    train, val = _data(dtype=torch.float64)

    def make64(seed: int) -> nn.Module:
        return make(seed).double()

    lrs = [0.05, 0.2, 1e300, 0.5]  # 1e300 overflows: diverges
    common = {"lrs": lrs, "seeds": [0, 1, 2, 3], "val_loader": val, "strategy": "vmap",
              "progress": False, "seed": 0}  # fmt: skip
    train.generator.manual_seed(1)  # the same data order in both calls
    full = fit_many(make64, train, nn.CrossEntropyLoss(), 4, **common)
    calls: list[int] = []

    def prune(epoch: int, histories: Any) -> set[int]:
        calls.append(epoch)
        return {0} if epoch == 1 else set()

    train.generator.manual_seed(1)
    pruned = fit_many(make64, train, nn.CrossEntropyLoss(), 4, prune=prune, **common)
    assert calls == [1, 2, 3]  # not after the last epoch
    assert full[2].diverged and pruned[2].diverged
    assert pruned[0].stop_reason == "pruned after epoch 1" and len(pruned[0].epochs) == 1
    assert pruned[0].epochs[0] == full[0].epochs[0]
    for i in (1, 3):
        for a, b in zip(full[i].epochs, pruned[i].epochs, strict=True):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-12)


def test_fit_many_writes_the_trained_weights_back_into_the_built_models() -> None:
    train, _ = _data(dtype=torch.float64)
    built: dict[str, list[nn.Module]] = {"vmap": [], "loop": []}

    def factory(strategy: str) -> Any:
        def build(seed: int) -> nn.Module:
            model = make(seed).double()
            built[strategy].append(model)
            return model

        return build

    for strategy in ("vmap", "loop"):
        train.generator.manual_seed(1)
        fit_many(factory(strategy), train, nn.CrossEntropyLoss(), 2, lrs=[0.1, 0.3],
                 seeds=[0, 1], strategy=strategy, progress=False, seed=0)  # fmt: skip
    for a, b in zip(built["vmap"], built["loop"], strict=True):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-10, atol=1e-12)
    assert not torch.equal(built["vmap"][0][0].weight, make(0).double()[0].weight)


def test_fit_many_refuses_prune_without_the_batched_strategy_and_a_shared_model() -> None:
    train, _ = _data()
    with pytest.raises(ValueError, match="prune needs the batched"):
        fit_many(make, train, nn.CrossEntropyLoss(), 1, lrs=[0.1], strategy="loop",
                 prune=lambda e, h: set())  # fmt: skip
    model = make(0)
    with pytest.raises(ValueError, match="same module object"):
        fit_many(lambda s: model, train, nn.CrossEntropyLoss(), 1, lrs=[0.1, 0.2])


def test_a_crashed_tune_resumes_from_the_store(tmp_path: Path) -> None:
    train, val = _data()
    calls = {"n": 0, "limit": 10**9}

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > calls["limit"]:
            raise RuntimeError("killed")
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    options = {"step_fn": step, "epochs": 2, "k": 3, "finder_runs": 1, "finder_kwargs": FAST,
               "progress": False, "executor": "serial", "store": tmp_path,
               "prune": False}  # fmt: skip
    # range test (20 steps) + two candidates (2 epochs × (4 train + 1 val) batches each)
    calls["limit"] = 20 + 2 * 10
    with pytest.raises(RuntimeError, match="killed"):
        lrkit.tune(make, train, val, **options)
    runs = lrkit.sweeps.Store(tmp_path).runs()
    assert sum(r.status == "done" for r in runs) == 2
    calls.update(n=0, limit=10**9)
    res = lrkit.tune(make, train, val, **options)
    assert calls["n"] == 20 + 1 * 10  # the range test and the one missing candidate only
    assert any("2 candidate(s) read from the store" in c for c in res.caveats)
    assert sum(r.status == "done" for r in lrkit.sweeps.Store(tmp_path).runs()) == 3
    assert res.metric == "val_loss" and res.lr is not None


def test_tune_leaves_the_users_loaders_and_model_factory_output_untouched() -> None:
    train, _ = _data()
    state = train.generator.get_state().clone()
    reference = make(0).state_dict()
    _tune()
    assert torch.equal(train.generator.get_state(), state)
    for key, value in make(0).state_dict().items():
        assert torch.equal(value, reference[key])


class Branchy(nn.Module):
    """Data-dependent control flow: vmap cannot batch it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        return out if out.sum() > -1e9 else -out


def test_a_model_vmap_cannot_batch_falls_back_to_serial_with_a_caveat() -> None:
    train, val = _data()

    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return Branchy()

    res = lrkit.tune(build, train, val, nn.CrossEntropyLoss(), epochs=1, k=2, finder_runs=1,
                     finder_kwargs=FAST, progress=False)  # fmt: skip
    assert res.executor == "serial"
    assert any("serial" in c and "vectorized" in c for c in res.caveats)
    with pytest.raises(ValueError, match="executor='vectorized' cannot run"):
        lrkit.tune(build, train, val, nn.CrossEntropyLoss(), epochs=1, k=2, finder_runs=1,
                   finder_kwargs=FAST, progress=False, executor="vectorized")  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 1}, "k must be an integer >= 2"),
        ({"schedule": "step"}, "schedule must be one of"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"seeds": ()}, "seeds must be a non-empty"),
        ({"seeds": (0, 0)}, "seeds repeat"),
        ({"rounds": 3}, "rounds must be 1 or 2"),
        ({"executor": "gpu"}, "executor must be one of"),
        ({"executor": "processes"}, "need a task by name"),
        ({"optimizer": "lion"}, "optimizer must be one of"),
        ({"metric": "f1"}, "metric must be one of"),
        ({"finder_kwargs": {"runs": 2}}, "finder_kwargs may not set runs"),
    ],
)
def test_invalid_arguments_are_refused_before_any_work(kwargs: dict[str, Any], match: str) -> None:
    train, val = _data()
    built: list[int] = []

    def counting(seed: int) -> nn.Module:
        built.append(seed)
        return make(seed)

    options = {"epochs": 2, "progress": False} | kwargs
    with pytest.raises(ValueError, match=match):
        lrkit.tune(counting, train, val, nn.CrossEntropyLoss(), **options)
    assert built == []


def test_a_model_instance_or_missing_loaders_are_refused() -> None:
    train, val = _data()
    with pytest.raises(ValueError, match=r"factory seed -> nn\.Module"):
        lrkit.tune(make(0), train, val, nn.CrossEntropyLoss(), epochs=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="val_loader are needed"):
        lrkit.tune(make, train, None, nn.CrossEntropyLoss(), epochs=1)


def test_result_round_trips_through_json(tmp_path: Path) -> None:
    res = _tune(epochs=1, k=2)
    back = TuneResult.load(res.save(tmp_path / "tune.json"))
    assert back.lr == res.lr and back.candidates == res.candidates and back.cost == res.cost
    assert back.finder is not None
    fig = res.plot(tmp_path / "tune.png")
    assert (tmp_path / "tune.png").exists() and len(fig.axes) >= 2


def test_two_rounds_add_finer_candidates_around_the_best() -> None:
    res = _tune(epochs=1, k=3, rounds=2, prune=False)
    first = sorted({c.lr for c in res.candidates if c.round == 1})
    second = sorted({c.lr for c in res.candidates if c.round == 2})
    assert second and not set(second) & set(first)
    ratio = first[1] / first[0]
    best1 = res.by_lr()  # every round-2 LR lies within two round-1 steps of a round-1 LR
    assert all(min(abs(math.log(s / f)) for f in first) <= 2 * math.log(ratio) + 1e-9
               for s in second) and best1  # fmt: skip


def tiny_task() -> lrkit.Task:
    """A task small enough for a CLI smoke test (importable as tests.test_tune:tiny_task)."""
    train, val = _data()
    return lrkit.Task(name="tiny", make_model=make, train=train.dataset, val=val.dataset,
                      criterion=nn.CrossEntropyLoss(), batch_size=30, epochs=2)  # fmt: skip


def test_cli_tune_prints_the_chosen_lr_and_stores_the_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lrkit.cli import app

    runner = CliRunner()
    args = ["tune", "tests.test_tune:tiny_task", "--k", "3", "--schedule", "one_cycle",
            "--seeds", "0,1", "--store", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "chosen LR:" in result.output and "run-equivalents" in result.output
    listed = runner.invoke(app, ["runs", "ls", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "tune-r1" in listed.output
    bad = runner.invoke(app, ["tune", "tests.test_tune:tiny_task", "--seeds", "a,b"])
    assert bad.exit_code == 2 and "--seeds" in bad.output


@pytest.mark.parametrize("name", ["prodigy", "schedulefree_adamw"])
def test_a_learning_rate_free_optimizer_is_refused_before_any_work(name: str) -> None:
    with pytest.raises(ValueError, match=f"optimizer='{name}' is learning-rate-free"):
        lrkit.tune("digits-mlp", optimizer=name, epochs=1, progress=False)


def test_the_batched_pass_gives_each_seed_its_own_data_order_like_the_serial_path() -> None:
    """One shared loader in a batched pass reads one data order: before the fix every seed's
    members read seed 0's, so the seed means (and the choice) depended on the executor."""
    train, val = _data(dtype=torch.float64)

    def make64(seed: int) -> nn.Module:
        return make(seed).double()

    options = {"epochs": 2, "k": 3, "finder_runs": 1, "finder_kwargs": FAST,
               "progress": False, "seeds": (0, 1), "prune": False}  # fmt: skip
    batched = lrkit.tune(make64, train, val, nn.CrossEntropyLoss(), executor="vectorized",
                         **options)  # fmt: skip
    serial = lrkit.tune(make64, train, val, nn.CrossEntropyLoss(), executor="serial",
                        **options)  # fmt: skip
    assert batched.executor == "vectorized" and serial.executor == "serial"
    got = {(c.lr, c.seed): c.metric for c in batched.candidates}
    want = {(c.lr, c.seed): c.metric for c in serial.candidates}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


def test_a_model_vmap_cannot_batch_is_refused_with_vectorized_before_the_range_test() -> None:
    train, val = _data()
    steps = {"n": 0}

    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return Branchy()

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        steps["n"] += 1
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    with pytest.raises(ValueError, match="executor='vectorized' cannot run"):
        lrkit.tune(build, train, val, step_fn=step, epochs=1, k=2, finder_runs=1,
                   finder_kwargs=FAST, progress=False, executor="vectorized")  # fmt: skip
    assert steps["n"] <= 1  # the probe traced one step under vmap; the range test never ran


def test_optimizer_options_that_cannot_reach_the_workers_are_refused() -> None:
    with pytest.raises(ValueError, match=r"optimizer_kwargs=.*cannot reach executor 'processes'"):
        lrkit.tune("digits-mlp", optimizer_kwargs={"weight_decay": 0.0}, executor="processes",
                   epochs=1, progress=False)  # fmt: skip


def test_stored_runs_are_not_shared_by_tunes_that_differ_beyond_the_lrs(tmp_path: Path) -> None:
    """The store key of a tune includes the metric, pruning, the optimizer's options and the
    model's shapes: a second tune that differs only there trains its own candidates."""
    base = {"executor": "serial", "store": tmp_path, "prune": False, "finder_runs": 1}
    first = _tune(**base)
    assert not any("read from the store" in c for c in first.caveats)
    again = _tune(**base)
    assert any("read from the store" in c for c in again.caveats)
    other = _tune(**(base | {"metric": "val_loss"}))  # the default is accuracy
    assert not any("read from the store" in c for c in other.caveats)
    assert other.lr is not None and all(c.metric is not None for c in other.candidates)
