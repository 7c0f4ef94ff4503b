"""The random generators that decide a loader's order: found, seeded per run, put back.

``seed=`` in lrkit means the whole run: torch, numpy and Python's global RNGs *and* the
``torch.Generator`` a ``DataLoader`` or its sampler carries (``DataLoader(generator=g)``,
``RandomSampler(generator=g)``, lrkit's own ``Task.train_loader``), which the global seed
does not reach. :class:`LoaderRng` finds those generators, seeds them with the run's seed
and gives them back their old state afterwards, so a range test leaves the loader's next
epoch as it was. What it cannot see (an ``IterableDataset`` or a custom iterable that shuffles
by itself) it names in :attr:`LoaderRng.caveats` instead of pretending.

>>> from torch.utils.data import DataLoader
>>> g = torch.Generator().manual_seed(1)
>>> rng = LoaderRng([DataLoader(list(range(8)), shuffle=True, generator=g)])
>>> len(rng.generators), rng.caveats
(1, [])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

from lrkit._steps import seed_all

__all__ = ["LoaderRng", "RunRng"]

_KNOWN_SAMPLERS = (RandomSampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler)


def _generators_of(loader: Any, name: str) -> tuple[list[torch.Generator], list[str]]:
    """The generators that order ``loader``'s batches, and what lrkit could not control."""
    if isinstance(loader, (Sequence, torch.Tensor)):
        return [], []  # a fixed order
    if not isinstance(loader, DataLoader):
        return [], [
            f"{name} is a {type(loader).__name__}, not a DataLoader or a sequence: seed= sets "
            "torch, numpy and random, but lrkit cannot see or restore a generator it may "
            "hold, so its data order may differ between runs"
        ]
    if isinstance(loader.dataset, IterableDataset):
        return [], [
            f"{name} reads an IterableDataset ({type(loader.dataset).__name__}), which orders "
            "its own data: seed= sets torch, numpy and random only; seed the dataset yourself "
            "for the same order in every run"
        ]
    owners: list[Any] = [loader, loader.sampler, loader.batch_sampler]
    if isinstance(loader.batch_sampler, BatchSampler):
        owners.append(loader.batch_sampler.sampler)
    found: dict[int, torch.Generator] = {}
    for owner in owners:
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator):
            found[id(gen)] = gen
    caveats = []
    samplers = [loader.sampler]
    if loader.batch_sampler is not None and not isinstance(loader.batch_sampler, BatchSampler):
        samplers = [loader.batch_sampler]
    for sampler in samplers:
        if not isinstance(sampler, _KNOWN_SAMPLERS) and getattr(sampler, "generator", None) is None:
            caveats.append(
                f"{name}'s sampler is a {type(sampler).__name__} with no `generator` attribute: "
                "seed= sets torch, numpy and random, but its order is its own"
            )
    return list(found.values()), caveats


class RunRng:
    """The state of every RNG a run's data draws from: the globals and the loaders' own."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)
        self.torch = torch.get_rng_state()
        import random

        import numpy as np

        self.numpy = np.random.get_state()  # noqa: NPY002
        self.python = random.getstate()
        self.loaders = [g.get_state() for g in self.generators]

    def apply(self) -> None:
        import random

        import numpy as np

        torch.set_rng_state(self.torch)
        np.random.set_state(self.numpy)  # noqa: NPY002
        random.setstate(self.python)
        for g, state in zip(self.generators, self.loaders, strict=True):
            g.set_state(state)


class LoaderRng:
    """The generators of ``loaders`` (``None`` entries skipped), remembered at construction."""

    def __init__(self, loaders: Iterable[Any], names: Sequence[str] = ()) -> None:
        self.generators: list[torch.Generator] = []
        self.caveats: list[str] = []
        seen: set[int] = set()
        for k, loader in enumerate(loaders):
            if loader is None:
                continue
            name = names[k] if k < len(names) else "the loader"
            gens, caveats = _generators_of(loader, name)
            self.generators += [g for g in gens if id(g) not in seen]
            seen.update(id(g) for g in gens)
            self.caveats += caveats
        self._saved = [g.get_state() for g in self.generators]

    def seed(self, seed: int) -> None:
        """Seed the global RNGs and every loader generator with ``seed`` (one run's seed)."""
        seed_all(seed)
        for g in self.generators:
            g.manual_seed(seed)

    def capture(self) -> RunRng:
        """The current state of every RNG the data draws from (to switch between runs)."""
        return RunRng(self.generators)

    def restore(self) -> None:
        """Give every loader generator the state it had at construction."""
        for g, state in zip(self.generators, self._saved, strict=True):
            g.set_state(state)
