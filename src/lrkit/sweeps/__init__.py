"""Sweeps that prove a choice: LR × schedule × optimizer × seed × fold, stored and resumable.

>>> res = lrkit.sweep("digits-mlp", lrs=logspace(1e-3, 1, 7), seeds=(0, 1, 2),  # doctest: +SKIP
...                   epochs=5, store="runs/digits")
>>> res.report                                                            # doctest: +SKIP
PosixPath('runs/digits/digits-1b2c3d4e/report.html')
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
