"""Bit-exact snapshots of everything a training run can touch, restored in place.

A :class:`Snapshot` remembers the parameters, gradients (object and values) and buffers of
the model and of any extra modules (the criterion), every module's train/eval mode and every
parameter's ``requires_grad``; the tensors the optimizer holds outside those modules (a
learned temperature), its per-parameter state and param-group hyperparameters; and the torch /
CUDA / numpy / Python RNG states. Restoring writes the saved values back *into the same
tensor objects* (and re-registers them where the run replaced them), so anything the user
holds, an optimizer's parameter list or a reference to a state tensor, stays valid and sees
exactly the old values.

With ``cache="disk"`` the copy lives in a temporary file named after the process
(``lrkit-snapshot-<pid>-*.pt``): it is deleted by :meth:`Snapshot.discard`, on SIGTERM (while
the snapshot is held in the main thread), and, for a process that died without either (SIGKILL,
power loss), by the next snapshot taken on the machine.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import re
import signal
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

Cache = Literal["memory", "disk"]

_MISSING = object()
_PREFIX = "lrkit-snapshot-"
_LEFTOVER = re.compile(rf"{_PREFIX}(\d+)-.*\.pt$")

ParamEntry = tuple[nn.Module | None, str | None, torch.Tensor, torch.Tensor | None, bool]
"""(owner module or None for an optimizer-only tensor, its name, the tensor, its .grad, rg)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_leftovers(directory: str | None = None) -> list[Path]:
    """Delete the snapshot files of processes that no longer run; returns what was deleted."""
    removed = []
    folder = Path(directory or tempfile.gettempdir())
    for path in folder.glob(f"{_PREFIX}*.pt"):
        match = _LEFTOVER.match(path.name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


class _TermGuard:
    """While installed, SIGTERM first deletes ``path``, then does what it did before."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.previous: Any = None
        self.installed = False
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                self.previous = signal.signal(signal.SIGTERM, self._on_term)
                self.installed = True

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.uninstall()
        previous = self.previous
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # the default: die of SIGTERM, as without lrkit
            signal.raise_signal(signum)

    def uninstall(self) -> None:
        if self.installed and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signal.SIGTERM) == self._on_term:
                    signal.signal(signal.SIGTERM, self.previous)
        self.installed = False


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
    _params: list[ParamEntry] = field(default_factory=list)
    _buffers: list[tuple[nn.Module, str, torch.Tensor]] = field(default_factory=list)
    _modes: list[tuple[nn.Module, bool]] = field(default_factory=list)
    _opt_state: list[tuple[torch.Tensor, dict[str, Any]]] = field(default_factory=list)
    _groups: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    _opt_called: Any = _MISSING
    _values: dict[str, Any] | None = None
    _path: str | None = None
    _rng: _Rng | None = None
    _guard: _TermGuard | None = None

    @classmethod
    def take(
        cls,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        cache: Cache = "memory",
        extra: Iterable[nn.Module] = (),
    ) -> Snapshot:
        """Remember ``model``, ``optimizer`` and the ``extra`` modules (e.g. the criterion)."""
        snap = cls(model, optimizer, cache)
        values: dict[str, Any] = {"params": [], "grads": [], "buffers": [], "state": []}
        seen_modules: set[int] = set()
        seen: set[int] = set()

        def remember(owner: nn.Module | None, name: str | None, p: torch.Tensor) -> None:
            seen.add(id(p))
            snap._params.append((owner, name, p, p.grad, p.requires_grad))
            values["params"].append(_cpu_copy(p))
            values["grads"].append(None if p.grad is None else _cpu_copy(p.grad))

        for module in (m for root in (model, *extra) for m in root.modules()):
            if id(module) in seen_modules:
                continue
            seen_modules.add(id(module))
            snap._modes.append((module, module.training))
            for name, p in module._parameters.items():
                if p is not None:
                    remember(module, name, p)
            for name, b in module._buffers.items():
                if b is None:
                    continue
                snap._buffers.append((module, name, b))
                values["buffers"].append(_cpu_copy(b))
        for group in optimizer.param_groups:  # tensors trained outside the modules
            for p in group["params"]:
                if id(p) not in seen:
                    remember(None, None, p)
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
            clean_leftovers()
            fd, snap._path = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", suffix=".pt")
            os.close(fd)
            snap._guard = _TermGuard(snap._path)
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
            for (module, name, p, grad, requires_grad), saved, saved_grad in zip(
                self._params, values["params"], values["grads"], strict=True
            ):
                p.copy_(saved)
                if module is not None and name is not None:
                    module._parameters[name] = p  # type: ignore[assignment]
                # The same .grad object, with its old values: backward accumulates into the
                # .grad of tensors no zero_grad reaches (trainable, not in the optimizer).
                if grad is not None and saved_grad is not None:
                    grad = _put_back(grad, saved_grad)
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
        if self._guard is not None:
            self._guard.uninstall()
            self._guard = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = None
