"""Sweeps that prove a choice: LR × schedule × optimizer × seed × fold, stored and resumable.

>>> import lrkit
>>> res = lrkit.sweep("digits-mlp", lrs=logspace(1e-2, 1, 2), seeds=(0,), epochs=1,
...                   store="runs/digits", progress=False)
>>> res.ran, [run.config["lr"] for run in res.runs]
(2, [0.01, 1.0])
>>> res.report                                                    # doctest: +ELLIPSIS
PosixPath('runs/digits/digits-.../report.html')

A real sweep spans more: ``lrs=logspace(1e-3, 1, 7), seeds=(0, 1, 2), epochs=5``.
"""

from __future__ import annotations

from lrkit.sweeps.driver import SweepResult, run_spec, sweep
from lrkit.sweeps.mirror import mirror
from lrkit.sweeps.spec import RunConfig, SweepSpec, logspace
from lrkit.sweeps.store import Store

__all__ = [
    "RunConfig",
    "Store",
    "SweepResult",
    "SweepSpec",
    "logspace",
    "mirror",
    "run_spec",
    "sweep",
]
