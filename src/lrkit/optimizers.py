"""The optimizers lrkit knows, in one table: name → torch class, defaults, batched twin.

``OPTIMIZERS`` maps each name to the class a plain run builds: ``sgd``, ``adam``, ``adamw``,
``nadam`` (``torch.optim``), and the learning-rate-free optimizers from optional extras,
imported when first built: ``prodigy`` (``prodigyopt.Prodigy``, extra ``prodigy``),
``schedulefree_adamw`` and ``schedulefree_sgd`` (``schedulefree.AdamWScheduleFree`` and
``SGDScheduleFree``, extra ``schedulefree``). :data:`DEFAULT_LRS` holds the LR their
documentation recommends, used when the caller gives none. :class:`BatchedOptimizer` is
the torch four's update rule on K members' stacked parameters ``{name: [K, ...]}`` (same
defaults, same bias corrections), each member with its own LR and a mask that freezes
diverged members; :func:`batched_twin` reads a torch optimizer's name and options back.
Depends on torch only.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DEFAULTS",
    "DEFAULT_LRS",
    "OPTIMIZERS",
    "TORCH_NAMES",
    "BatchedOptimizer",
    "OptimizerFactory",
    "batched_twin",
    "check_batched",
    "check_name",
    "check_range_test",
    "is_schedule_free",
    "lr_free_note",
]


class _FromExtra:
    """An optimizer class from an optional package, imported when first built; a missing
    package is an ImportError naming lrkit's extra that installs it."""

    def __init__(self, name: str, module: str, attr: str, extra: str) -> None:
        self.name, self.module, self.attr, self.extra = name, module, attr, extra
        self.__name__ = attr

    def load(self) -> type[torch.optim.Optimizer]:
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise ImportError(
                f"optimizer {self.name!r} needs the {self.module} package: "
                f'pip install "lrkit[{self.extra}]"'
            ) from exc
        cls: type[torch.optim.Optimizer] = getattr(module, self.attr)
        return cls

    def __call__(self, params: Any, **kwargs: Any) -> torch.optim.Optimizer:
        cls = self.load()
        # Prodigy prints a line when weight decay is on; lrkit's output (and --json) stays clean.
        with contextlib.redirect_stdout(io.StringIO()):
            return cls(params, **kwargs)

    def __repr__(self) -> str:
        return f"{self.module}.{self.attr}"


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "nadam": torch.optim.NAdam,
    "prodigy": _FromExtra("prodigy", "prodigyopt", "Prodigy", "prodigy"),
    "schedulefree_adamw": _FromExtra(
        "schedulefree_adamw", "schedulefree", "AdamWScheduleFree", "schedulefree"
    ),
    "schedulefree_sgd": _FromExtra(
        "schedulefree_sgd", "schedulefree", "SGDScheduleFree", "schedulefree"
    ),
}
"""Every optimizer by lrkit's name: the class a plain run builds (``prodigy`` and the
``schedulefree_*`` ones imported from their extras when first built)."""

DEFAULT_LRS: dict[str, float] = {
    "prodigy": 1.0,
    "schedulefree_adamw": 0.0025,
    "schedulefree_sgd": 1.0,
}
"""The LR each learning-rate-free optimizer's documentation gives as its default, used when
the caller gives none. Prodigy's ``lr`` is a multiplier on its own estimate of the step size
("leave LR set to 1 unless you encounter instability"); Schedule-Free's is a real LR (its
docs: 1x-10x the scheduled AdamW LR, 10x-50x the classical SGD LR, and tuning helps)."""

_LR_MEANING = {
    "prodigy": "a multiplier on Prodigy's own step-size estimate",
    "schedulefree_adamw": "Schedule-Free AdamW's documented default",
    "schedulefree_sgd": "Schedule-Free SGD's documented default",
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
    "nadam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "momentum_decay": 4e-3},
}
"""The options the batched twin implements, with torch.optim's defaults."""

TORCH_NAMES: dict[str, str] = {
    getattr(OPTIMIZERS[name], "__name__", name): name for name in DEFAULTS
}
"""torch class name (``"SGD"``) → lrkit's name (``"sgd"``), for the names with a batched twin."""

OptimizerFactory = Callable[[Iterable[Any], float], torch.optim.Optimizer]
"""``factory(params, lr) -> torch.optim.Optimizer``, e.g. ``lambda p, lr: SGD(p, lr, 0.9)``."""


def check_name(name: object, argument: str = "optimizer") -> str:
    """``name`` when it is in :data:`OPTIMIZERS`, else a ValueError listing them."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"{argument} must be one of {', '.join(OPTIMIZERS)} (got {name!r})")
    return name


def check_batched(
    name: str, who: str = "the batched computation", fix: str = "train each run with lrkit.fit"
) -> str:
    """``name`` when it has a batched twin (:data:`DEFAULTS`), else a ValueError naming
    ``who`` cannot run it and ``fix``."""
    if name not in DEFAULTS:
        raise ValueError(
            f"{who} runs {', '.join(DEFAULTS)} (they have a batched twin); {name} has none: {fix}"
        )
    return name


def lr_free_note(name: str) -> str:
    """What a run of ``name`` (a key of :data:`DEFAULT_LRS`) says when it took the default."""
    return (
        f"lr not given: {name} ran at lr={DEFAULT_LRS[name]:g}, {_LR_MEANING[name]} "
        "(pass lr to choose it)"
    )


def _package(optimizer: torch.optim.Optimizer) -> str:
    return type(optimizer).__module__.partition(".")[0]


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` keeps Schedule-Free's two points (``train()`` puts the
    interpolation y in the parameters, ``eval()`` the average x), as every optimizer of the
    ``schedulefree`` package except the closure forms does."""
    groups = optimizer.param_groups
    return (
        bool(groups)
        and "train_mode" in groups[0]
        and callable(getattr(optimizer, "train", None))
        and callable(getattr(optimizer, "eval", None))
    )


def check_range_test(optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimizer a learning-rate range test cannot measure, with the reason.

    Prodigy's ``lr`` multiplies its own estimate of the step size, which it grows during the
    run: a range test would sweep the multiplier against a moving estimate, not a learning
    rate. Schedule-Free's loss during training is measured at the interpolation point y,
    while the weights it is evaluated with are the average x, whose weights depend on the
    largest LR so far (and its ``warmup_steps`` rescales every LR): a rising-LR curve does not
    describe a run at one LR.
    """
    inner = getattr(optimizer, "optimizer", None)  # accelerate's AcceleratedOptimizer
    if isinstance(inner, torch.optim.Optimizer):
        optimizer = inner
    package = _package(optimizer)
    name = type(optimizer).__name__
    if package == "prodigyopt":
        raise ValueError(
            f"find_lr cannot range-test {name}: its lr multiplies Prodigy's own step-size "
            "estimate, which adapts during the run, so the curve would not locate a learning "
            "rate. Run Prodigy at its default lr=1.0 (lrkit.fit, Task.fit(optimizer='prodigy')) "
            "or find an LR for another optimizer (e.g. adamw)"
        )
    if package == "schedulefree" or is_schedule_free(optimizer):
        raise ValueError(
            f"find_lr cannot range-test {name}: Schedule-Free's training loss is measured at "
            "its interpolation point while it is evaluated at the average of the iterates, "
            "weighted by the largest LR so far, so a rising-LR curve does not describe a run at "
            "one LR. Start from its documented default (schedulefree_adamw 0.0025, "
            "schedulefree_sgd 1.0) or sweep its LR (lrkit.sweep(..., "
            "optimizers=('schedulefree_adamw',)))"
        )


class BatchedOptimizer:
    """SGD (momentum, dampening, nesterov, weight decay), Adam, AdamW or NAdam on stacked
    parameters ``{name: [K, ...]}``, with a per-member LR and a mask of members to update.

    Members are updated in lock step, so every active member has taken the same number of
    steps: the bias corrections are the same Python floats torch computes. Inactive
    (diverged) members keep their parameters and state untouched.

    All parameters live in one flat ``[K, P]`` buffer (``self.params`` are views into it), so
    an update is a dozen whole-buffer operations, not a dozen per parameter tensor: on a GPU
    the step is bound by kernel launches, and this cuts them by the number of tensors.
    """

    def __init__(self, name: str, params: dict[str, Tensor], **kwargs: Any) -> None:
        check_batched(check_name(name))
        unknown = sorted(set(kwargs) - set(DEFAULTS[name]))
        if unknown:
            raise ValueError(
                f"{name} takes {', '.join(DEFAULTS[name])} (torch.optim's names); "
                f"unknown: {', '.join(unknown)}"
            )
        self.name = name
        self.options = DEFAULTS[name] | kwargs
        if (
            name == "sgd"
            and self.options["nesterov"]
            and (self.options["momentum"] <= 0 or self.options["dampening"] != 0)
        ):
            raise ValueError(
                "nesterov needs momentum > 0 and dampening = 0 (as in torch.optim.SGD)"
            )
        self.state: dict[str, Tensor] = {}
        self.steps = 0
        self.params: dict[str, Tensor] = {}
        self.flat = torch.empty(0)
        if params:
            members = next(iter(params.values())).shape[0]
            self.flat = torch.cat([v.detach().reshape(members, -1) for v in params.values()], 1)
            offset = 0
            for key, value in params.items():
                size = value[0].numel()
                piece = self.flat[:, offset : offset + size]
                if value.dim() > 1:
                    self.params[key] = piece.unflatten(1, value.shape[1:])  # type: ignore[no-untyped-call]
                else:
                    self.params[key] = piece.squeeze(1)
                offset += size
        # NAdam keeps its running product of momenta in float32, as torch does.
        self.mu_product = torch.ones((), dtype=torch.float32)

    def keep(self, rows: Tensor) -> None:
        """Keep only the members at ``rows`` (a 1-D index tensor), with their parameters and
        state, and free the others' memory: later steps cost what the kept members cost."""
        if not self.params:
            return
        shapes = {key: value.shape[1:] for key, value in self.params.items()}
        self.flat = self.flat[rows].contiguous()
        self.state = {key: value[rows].contiguous() for key, value in self.state.items()}
        offset = 0
        for key, shape in shapes.items():  # views into the new buffer, as __init__ makes them
            size = math.prod(shape)
            piece = self.flat[:, offset : offset + size]
            self.params[key] = piece.unflatten(1, shape) if shape else piece.squeeze(1)  # type: ignore[no-untyped-call]
            offset += size

    @torch.no_grad()
    def step(
        self,
        grads: dict[str, Tensor],
        lr: Tensor,
        active: Tensor,
        momentum: float | None = None,
    ) -> None:
        """One update of every active member; ``momentum`` overrides SGD's momentum or
        Adam's beta1 for this step (as a one-cycle or cyclic momentum schedule does)."""
        self.steps += 1
        o = self.options
        p = self.flat
        members = p.shape[0]
        g = torch.cat([grads[key].reshape(members, -1) for key in self.params], 1)
        keep = active.reshape(members, 1)
        lr_k = lr.to(p.dtype).reshape(members, 1)
        if self.name == "sgd":
            new_p = self._sgd(p, g, lr_k, keep, momentum)
        elif self.name == "nadam":
            beta1 = o["betas"][0] if momentum is None else momentum
            mu = beta1 * (1.0 - 0.5 * (0.96 ** (self.steps * o["momentum_decay"])))
            mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((self.steps + 1) * o["momentum_decay"])))
            self.mu_product *= mu
            new_p = self._nadam(p, g, lr_k, keep, mu, mu_next, float(self.mu_product))
        else:
            new_p = self._adam(p, g, lr_k, keep, momentum)
        p.copy_(torch.where(keep, new_p, p))

    def _keep(self, key: str, new: Tensor, keep: Tensor) -> None:
        self.state[key] = new if key not in self.state else torch.where(keep, new, self.state[key])

    def _sgd(
        self, p: Tensor, g: Tensor, lr: Tensor, keep: Tensor, momentum: float | None
    ) -> Tensor:
        o = self.options
        m = o["momentum"] if momentum is None else momentum
        if o["weight_decay"]:
            g = g + o["weight_decay"] * p
        if m != 0:
            if "momentum_buffer" not in self.state:
                buf = g.clone()
            else:
                buf = self.state["momentum_buffer"] * m + (1 - o["dampening"]) * g
            self._keep("momentum_buffer", buf, keep)
            g = g + m * buf if o["nesterov"] else buf
        return p - lr * g

    def _adam(
        self, p: Tensor, g: Tensor, lr: Tensor, keep: Tensor, momentum: float | None
    ) -> Tensor:
        o = self.options
        beta1 = o["betas"][0] if momentum is None else momentum
        beta2 = o["betas"][1]
        if o["weight_decay"]:
            if self.name == "adamw":
                p = p * (1 - lr * o["weight_decay"])
            else:
                g = g + o["weight_decay"] * p
        exp_avg = self.state.get("exp_avg", torch.zeros_like(p))
        exp_avg_sq = self.state.get("exp_avg_sq", torch.zeros_like(p))
        exp_avg = exp_avg.lerp(g, 1 - beta1)
        exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
        self._keep("exp_avg", exp_avg, keep)
        self._keep("exp_avg_sq", exp_avg_sq, keep)
        bias1 = 1 - beta1**self.steps
        bias2_sqrt = (1 - beta2**self.steps) ** 0.5
        denom = exp_avg_sq.sqrt() / bias2_sqrt + o["eps"]
        updated: Tensor = p - (lr / bias1) * exp_avg / denom
        return updated

    def _nadam(
        self, p: Tensor, g: Tensor, lr: Tensor, keep: Tensor, mu: float, mu_next: float,
        mu_product: float,
    ) -> Tensor:  # fmt: skip
        o = self.options
        beta1, beta2 = o["betas"]
        if o["weight_decay"]:
            g = g + o["weight_decay"] * p
        exp_avg = self.state.get("exp_avg", torch.zeros_like(p)).lerp(g, 1 - beta1)
        exp_avg_sq = self.state.get("exp_avg_sq", torch.zeros_like(p)) * beta2 + (1 - beta2) * g * g
        self._keep("exp_avg", exp_avg, keep)
        self._keep("exp_avg_sq", exp_avg_sq, keep)
        denom = (exp_avg_sq / (1 - beta2**self.steps)).sqrt() + o["eps"]
        mu_product_next = mu_product * mu_next
        p = p + (-lr * (1.0 - mu) / (1.0 - mu_product)) * g / denom
        updated: Tensor = p + ((-lr * mu_next) / (1.0 - mu_product_next)) * exp_avg / denom
        return updated


def batched_twin(
    optimizer: torch.optim.Optimizer,
    who: str = "vectorized=True",
    fix: str = "pass vectorized=False",
) -> tuple[str, dict[str, Any]]:
    """The batched twin's name and options for a fresh single-group torch optimizer.

    ``who`` and ``fix`` name the caller and the way out in the errors.
    """
    kind = TORCH_NAMES.get(type(optimizer).__name__)
    if kind is None:
        raise ValueError(
            f"{who} supports SGD, Adam, AdamW and NAdam (got {type(optimizer).__name__}); {fix}"
        )
    if len(optimizer.param_groups) != 1:
        raise ValueError(f"{who} needs a single param group; {fix}")
    if any(optimizer.state.values()):
        raise ValueError(f"{who} needs a fresh optimizer (it has state already); {fix}")
    group = optimizer.param_groups[0]
    options = {key: group[key] for key in DEFAULTS[kind] if key in group}
    if isinstance(options.get("betas"), tuple):
        options["betas"] = tuple(float(b) for b in options["betas"])
    return kind, options
