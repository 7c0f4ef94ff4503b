"""Bit-exact snapshots of everything a training run can touch, restored in place.

A :class:`Snapshot` remembers the model's parameters, gradients and buffers, every module's
train/eval mode and every parameter's ``requires_grad``, the optimizer's per-parameter state
and param-group hyperparameters, and the torch / CUDA / numpy / Python RNG states. Restoring
writes the saved values back *into the same tensor objects* (and re-registers them where the
run replaced them), so anything the user holds, an optimizer's parameter list or a reference
to a state tensor, stays valid and sees exactly the old values.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import tempfile
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

Cache = Literal["memory", "disk"]

_MISSING = object()


def _cpu_copy(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", copy=True)


def _put_back(live: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
    """Copy ``saved`` into ``live`` when shapes allow, else a fresh tensor like ``live``."""
    with torch.no_grad():
        if live.shape == saved.shape and live.dtype == saved.dtype:
            live.copy_(saved)
            return live
    return saved.to(device=live.device)


@dataclass
class _Rng:
    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] | None
    numpy: Any
    python: Any

    @classmethod
    def capture(cls) -> _Rng:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None  # type: ignore[no-untyped-call]
        return cls(torch.get_rng_state(), cuda, np.random.get_state(), random.getstate())  # noqa: NPY002

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None:
            torch.cuda.set_rng_state_all(self.torch_cuda)
        np.random.set_state(self.numpy)  # noqa: NPY002
        random.setstate(self.python)


@dataclass
class Snapshot:
    """Everything needed to put ``model`` and ``optimizer`` back exactly as they were."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    cache: Cache = "memory"
    _params: list[tuple[nn.Module, str, nn.Parameter, torch.Tensor | None, bool]] = field(
        default_factory=list
    )
    _buffers: list[tuple[nn.Module, str, torch.Tensor]] = field(default_factory=list)
    _modes: list[tuple[nn.Module, bool]] = field(default_factory=list)
    _opt_state: list[tuple[torch.Tensor, dict[str, Any]]] = field(default_factory=list)
    _groups: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    _opt_called: Any = _MISSING
    _values: dict[str, Any] | None = None
    _path: str | None = None
    _rng: _Rng | None = None

    @classmethod
    def take(
        cls, model: nn.Module, optimizer: torch.optim.Optimizer, cache: Cache = "memory"
    ) -> Snapshot:
        snap = cls(model, optimizer, cache)
        values: dict[str, Any] = {"params": [], "buffers": [], "state": []}
        for module in model.modules():
            snap._modes.append((module, module.training))
            for name, p in module._parameters.items():
                if p is None:
                    continue
                snap._params.append((module, name, p, p.grad, p.requires_grad))
                values["params"].append(_cpu_copy(p))
            for name, b in module._buffers.items():
                if b is None:
                    continue
                snap._buffers.append((module, name, b))
                values["buffers"].append(_cpu_copy(b))
        for key, state in optimizer.state.items():
            snap._opt_state.append((key, dict(state)))
            values["state"].append(
                {
                    k: _cpu_copy(v) if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                    for k, v in state.items()
                }
            )
        for group in optimizer.param_groups:
            hyper = {
                k: _cpu_copy(v) if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                for k, v in group.items()
                if k != "params"
            }
            snap._groups.append((group, hyper))
        snap._opt_called = getattr(optimizer, "_opt_called", _MISSING)
        snap._rng = _Rng.capture()
        if cache == "disk":
            fd, snap._path = tempfile.mkstemp(prefix="lrkit-snapshot-", suffix=".pt")
            os.close(fd)
            try:
                torch.save(values, snap._path)
            except BaseException:
                snap.discard()
                raise
        else:
            snap._values = values
        return snap

    def _load_values(self) -> dict[str, Any]:
        if self._values is not None:
            return self._values
        assert self._path is not None
        loaded: dict[str, Any] = torch.load(self._path, weights_only=False)
        return loaded

    def restore(self, rng: bool = True) -> None:
        """Write every saved value back; with ``rng=False`` the RNG states are left alone."""
        values = self._load_values()
        with torch.no_grad():
            for (module, name, p, grad, requires_grad), saved in zip(
                self._params, values["params"], strict=True
            ):
                p.copy_(saved)
                module._parameters[name] = p
                # Training only ever replaces .grad (zero_grad(set_to_none=True)), never
                # writes into the old tensor, so putting the old object back restores it.
                p.grad = grad
                p.requires_grad_(requires_grad)
            for (module, name, b), saved in zip(self._buffers, values["buffers"], strict=True):
                module._buffers[name] = _put_back(b, saved)
        for module, training in self._modes:
            module.training = training
        opt = self.optimizer
        opt.state.clear()
        for (key, live), saved in zip(self._opt_state, values["state"], strict=True):
            restored: dict[str, Any] = {}
            for k, v in saved.items():
                old = live[k]
                restored[k] = _put_back(old, v) if isinstance(v, torch.Tensor) else v
            opt.state[key] = restored
        for group, hyper in self._groups:
            for k, v in hyper.items():
                current = group.get(k)
                if isinstance(v, torch.Tensor) and isinstance(current, torch.Tensor):
                    group[k] = _put_back(current, v)
                else:
                    group[k] = copy.deepcopy(v)
            for k in [k for k in group if k != "params" and k not in hyper]:
                del group[k]
        if self._opt_called is _MISSING:
            if hasattr(opt, "_opt_called"):
                delattr(opt, "_opt_called")
        else:
            opt._opt_called = self._opt_called  # type: ignore[attr-defined]
        if rng and self._rng is not None:
            self._rng.restore()

    def discard(self) -> None:
        """Free the copy: delete the temporary file of ``cache="disk"``."""
        self._values = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = None
