"""seed= means the whole run: a loader's own generator is seeded per run and put back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from tests.conftest import make_data, make_model
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, RandomSampler

import lrkit
from lrkit._loaders import LoaderRng


def own_generator_loader(batch_size: int = 32) -> DataLoader:
    """Like ``Task.train_loader``: the loader carries its own generator."""
    gen = torch.Generator().manual_seed(5)
    return DataLoader(make_data(), batch_size=batch_size, shuffle=True, generator=gen)


def find(loader: Any, **kwargs: Any) -> lrkit.FinderResult:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kwargs = {"num_steps": 20, "end_lr": 1.0, "progress": False} | kwargs
    return lrkit.find_lr(model, opt, loader, nn.CrossEntropyLoss(), **kwargs)


def test_find_lr_with_a_seed_gives_the_same_curve_twice_on_a_loader_with_its_own_generator() -> (
    None
):
    loader = own_generator_loader()
    assert find(loader, seed=0).losses == find(loader, seed=0).losses


def test_find_lr_puts_the_loaders_generator_back() -> None:
    loader = own_generator_loader()
    assert loader.generator is not None
    before = loader.generator.get_state()
    find(loader, seed=0)
    find(loader)
    assert torch.equal(loader.generator.get_state(), before)


def test_a_samplers_own_generator_is_seeded_and_put_back() -> None:
    gen = torch.Generator().manual_seed(9)
    data = make_data()
    loader = DataLoader(data, batch_size=32, sampler=RandomSampler(data, generator=gen))
    before = gen.get_state()
    assert find(loader, seed=1).losses == find(loader, seed=1).losses
    assert torch.equal(gen.get_state(), before)


def test_each_of_runs_r_draws_its_order_from_seed_plus_r() -> None:
    loader = own_generator_loader(batch_size=64)  # 4 batches: the runs reshuffle 5 times
    together = find(loader, seed=10, runs=3)
    for r in range(3):
        alone = find(loader, seed=10 + r)
        assert together.curves[r].losses == alone.losses


def test_vectorized_runs_equal_the_serial_runs_on_a_loader_with_its_own_generator() -> None:
    loader = own_generator_loader(batch_size=64)
    serial = find(loader, seed=3, runs=3)
    batched = find(loader, seed=3, runs=3, vectorized=True)
    for a, b in zip(serial.curves, batched.curves, strict=True):
        assert len(a.losses) == len(b.losses)
        assert a.losses == pytest.approx(b.losses, rel=1e-5, abs=1e-6)


def test_fit_with_a_seed_is_reproducible_and_puts_the_generator_back() -> None:
    loader = own_generator_loader()
    assert loader.generator is not None
    before = loader.generator.get_state()

    def run() -> list[float]:
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        history = lrkit.fit(model, opt, loader, nn.CrossEntropyLoss(), 2, seed=0, progress=False)
        assert history.caveats == []
        return history.step_loss

    assert run() == run()
    assert torch.equal(loader.generator.get_state(), before)


class Stream(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        data = make_data()
        for i in range(0, 256, 32):
            yield data[i : i + 32]


def test_what_seed_cannot_control_is_named_in_the_caveats() -> None:
    res = find(DataLoader(Stream(), batch_size=None), seed=0)
    assert any("IterableDataset" in c for c in res.caveats)
    plain = find(DataLoader(make_data(), batch_size=32, shuffle=True), seed=0)
    assert not any("IterableDataset" in c or "DataLoader" in c for c in plain.caveats)
    assert find(DataLoader(Stream(), batch_size=None)).run_caveats == []  # no seed, no promise


def test_a_custom_iterable_is_named_and_a_list_is_a_fixed_order() -> None:
    class Batches:
        def __iter__(self) -> Iterator[Any]:
            return iter(DataLoader(make_data(), batch_size=32))

    assert "Batches" in LoaderRng([Batches()], ["train_loader"]).caveats[0]
    assert LoaderRng([[(torch.zeros(2), torch.zeros(2))]]).caveats == []
