"""Executors: where the runs of a sweep run. Each yields ``(run id, result or exception)``.

The driver (``lrkit.sweep``) writes the store; executors only run and return.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from lrkit.sweeps.run import run_config
from lrkit.sweeps.spec import RunConfig

EXECUTORS = ("serial", "processes", "ray")
Outcome = tuple[str, dict[str, Any] | BaseException]


def serial(configs: Sequence[RunConfig]) -> Iterator[Outcome]:
    """In this process, one run after another."""
    for cfg in configs:
        try:
            yield cfg.id, run_config(cfg.to_dict())
        except Exception as exc:  # a failed run is recorded, the sweep goes on
            yield cfg.id, exc


def processes(configs: Sequence[RunConfig], workers: int | None) -> Iterator[Outcome]:
    """A local pool of ``workers`` processes (default: one per CPU), started with spawn."""
    workers = workers or os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_config, cfg.to_dict()): cfg.id for cfg in configs}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as exc:
                yield futures[future], exc


def ray(
    configs: Sequence[RunConfig], workers: int | None, address: str | None
) -> Iterator[Outcome]:
    """Each run a Ray task; ``address`` joins a running cluster, else a local one starts."""
    try:
        import ray as ray_module
    except ImportError as exc:
        raise ImportError("executor='ray' needs Ray: pip install 'lrkit[ray]'") from exc
    started_here = not ray_module.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is not None:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = workers or os.cpu_count() or 1
        ray_module.init(**kwargs)
    try:
        remote = ray_module.remote(num_cpus=1)(run_config)
        pending = {remote.remote(cfg.to_dict()): cfg.id for cfg in configs}
        while pending:
            done, _ = ray_module.wait(list(pending), num_returns=1)
            ref = done[0]
            run_id = pending.pop(ref)
            try:
                yield run_id, ray_module.get(ref)
            except Exception as exc:
                cause = getattr(exc, "cause", None)
                yield run_id, cause if isinstance(cause, BaseException) else exc
    finally:
        if started_here:
            ray_module.shutdown()


def execute(
    executor: str, configs: Sequence[RunConfig], workers: int | None, address: str | None
) -> Iterator[Outcome]:
    if executor == "serial":
        return serial(configs)
    if executor == "processes":
        return processes(configs, workers)
    if executor == "ray":
        return ray(configs, workers, address)
    raise ValueError(f"executor must be one of {', '.join(EXECUTORS)} (got {executor!r})")
