"""K copies of one model trained as one batched computation: the engine under ``fit_many``
and the vectorized range test.

The members' parameters and buffers are stacked on a new first axis
(``torch.func.stack_module_state``); one copy of the model on the meta device gives the
code, ``functional_call`` runs it on each member's tensors, and ``vmap(grad_and_value(...))``
computes every member's loss and gradients in one call. :class:`BatchedOptimizer` then
updates all members at once, each with its own LR, skipping the inactive (diverged) ones.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lrkit._steps import StepFn, loss_value
from lrkit.optimizers import BatchedOptimizer

__all__ = ["BatchedModel", "stack_batches"]

Randomness = Literal["error", "different", "same"]


class _Call(nn.Module):
    """``fn(model, batch)`` as a module, so that ``functional_call`` can run it on a
    member's tensors (the member's state is named ``model.<name>``)."""

    def __init__(self, model: nn.Module, fn: Callable[[nn.Module, Any], Any]) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, batch: Any) -> Any:
        return self.fn(self.model, batch)


def _call(module: _Call, state: dict[str, Tensor], batch: Any) -> Any:
    from torch.func import functional_call

    return functional_call(module, {f"model.{k}": v for k, v in state.items()}, (batch,))


class BatchedModel:
    """K members of one architecture as stacked tensors, trained in lock step.

    ``members`` give the initial state (member ``k`` is ``members[k]``); ``step(model,
    batch) -> loss`` is the training step, as in ``fit`` and ``find_lr``. Only the
    parameters named in ``trainable`` (default: all) are updated; the others are held fixed.
    ``shared_data``: every member reads the same batch (else batch tensors carry the members
    on their first axis). ``randomness`` is vmap's: ``"error"`` refuses random ops (dropout),
    ``"different"`` gives each member its own draws from the global RNG.
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        step: StepFn,
        optimizer: str,
        options: Mapping[str, Any],
        *,
        trainable: Collection[str] | None = None,
        shared_data: bool = False,
        randomness: Randomness = "error",
        compile: bool = False,
    ) -> None:
        from torch.func import grad_and_value, stack_module_state, vmap

        self.members = len(members)
        stacked, self.buffers = stack_module_state(list(members))
        names = trainable if trainable is not None else stacked.keys()
        params = {k: v.detach() for k, v in stacked.items() if k in names}
        self.fixed = {k: v.detach() for k, v in stacked.items() if k not in names}
        self.optimizer = BatchedOptimizer(optimizer, params, **options)
        self.params = self.optimizer.params  # views into the optimizer's flat buffer
        self.base = copy.deepcopy(members[0]).to("meta")
        self.randomness = randomness
        self.data_dim = None if shared_data else 0

        train = _Call(self.base, lambda model, batch: loss_value(step(model, batch)))

        def loss(params: dict[str, Tensor], fixed: dict[str, Tensor],
                 buffers: dict[str, Tensor], batch: Any) -> Tensor:  # fmt: skip
            out: Tensor = _call(train, params | fixed | buffers, batch)
            return out

        grads = vmap(grad_and_value(loss), in_dims=(0, 0, 0, self.data_dim), randomness=randomness)
        self._grads = torch.compile(grads) if compile else grads

    def grads(self, batch: Any) -> tuple[dict[str, Tensor], Tensor]:
        """Every member's gradients (``{name: [K, ...]}``) and loss (``[K]``) on ``batch``,
        in training mode."""
        self.base.train()
        grads, loss = self._grads(self.params, self.fixed, self.buffers, batch)
        return grads, loss.detach()

    def step(
        self, grads: dict[str, Tensor], lr: Tensor, active: Tensor, momentum: float | None = None
    ) -> None:
        """One update of the active members, member ``k`` with ``lr[k]``; ``momentum``
        overrides SGD's momentum or Adam's beta1 for this step (a cyclic momentum)."""
        self.optimizer.step(grads, lr, active, momentum)

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only the members at positions ``rows`` (in that order): their parameters,
        fixed tensors, buffers and optimizer state. The others are dropped, so later steps
        cost only the kept members' compute (what pruning a sweep saves)."""
        device = next(iter((self.params | self.fixed | self.buffers).values())).device
        index = torch.as_tensor(list(rows), dtype=torch.long, device=device)
        self.optimizer.keep(index)
        self.fixed = {k: v[index] for k, v in self.fixed.items()}
        self.buffers = {k: v[index] for k, v in self.buffers.items()}
        self.members = len(index)

    @torch.no_grad()
    def write_to(self, row: int, model: nn.Module) -> None:
        """Copy member ``row``'s current parameters and buffers into ``model`` (a module of
        the same architecture, such as the one the member was built from)."""
        state = self.params | self.fixed | self.buffers
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if name in state:
                tensor.copy_(state[name][row])

    def evaluate(self, fn: Callable[[nn.Module, Any], Any], batch: Any) -> Any:
        """``fn(model, batch)`` for every member in eval mode without gradients, stacked on
        a first axis of size K (``batch`` is shared by all members)."""
        from torch.func import vmap

        module = _Call(self.base, fn)

        def one(p: dict[str, Tensor], f: dict[str, Tensor], b: dict[str, Tensor]) -> Any:
            return _call(module, p | f | b, batch)

        self.base.eval()
        try:
            with torch.no_grad():
                return vmap(one, randomness=self.randomness)(self.params, self.fixed, self.buffers)
        finally:
            self.base.train()


def stack_batches(batches: Sequence[Any]) -> Any:
    """One batch per member → one batch whose tensors carry the members on a first axis."""
    first = batches[0]
    if isinstance(first, Tensor):
        return torch.stack(list(batches))
    if isinstance(first, Mapping):
        return type(first)({k: stack_batches([b[k] for b in batches]) for k in first})  # type: ignore[call-arg]
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(stack_batches(p) for p in zip(*batches, strict=True)))
    if isinstance(first, (list, tuple)):
        return type(first)(stack_batches(p) for p in zip(*batches, strict=True))
    raise TypeError(
        f"a batch must hold tensors (in tuples, lists or dicts) to be stacked per member "
        f"(got {type(first).__name__})"
    )
