"""``lrkit.tuning`` (``lrkit.tune``): the LR a full-budget grid would pick, for a few runs.

A range test narrows the search to an interval around its suggestion
(:mod:`lrkit.tuning.interval`); K candidates in it are trained at the full budget, batched
where the model allows, and pruned by successive halving (:mod:`lrkit.tuning.prune`); the
best seed-mean validation metric wins (:class:`TuneResult`).
"""

from lrkit.tuning.result import Candidate, TuneResult
from lrkit.tuning.search import EXECUTORS, SCHEDULES, tune

__all__ = ["EXECUTORS", "SCHEDULES", "Candidate", "TuneResult", "tune"]
