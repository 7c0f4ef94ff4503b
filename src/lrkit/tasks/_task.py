"""The :class:`Task`: everything needed to train one model on one dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from lrkit.optimizers import DEFAULT_LRS, check_name, lr_free_note
from lrkit.optimizers import OPTIMIZERS as OPTIMIZERS  # the one table; re-exported

if TYPE_CHECKING:
    from lrkit.schedules import Schedule
    from lrkit.train import History


def targets_of(dataset: Dataset[Any]) -> np.ndarray:
    """The targets of a dataset of ``(x, y)`` pairs (read directly from a TensorDataset)."""
    if isinstance(dataset, TensorDataset):
        return np.asarray(dataset.tensors[1].numpy())
    if isinstance(dataset, Subset):
        picked: np.ndarray = targets_of(dataset.dataset)[np.asarray(dataset.indices)]
        return picked
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([targets_of(d) for d in dataset.datasets])
    return np.asarray([np.asarray(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]


def num_samples(dataset: Dataset[Any]) -> int:
    """``len(dataset)``; every dataset lrkit builds is sized."""
    return len(dataset)  # type: ignore[arg-type]


@dataclass
class Task:
    """A model factory, train/val datasets, a loss, a metric and training defaults.

    ``make_model(seed)`` must build the same initial weights for the same seed. ``metric``
    is a name from :data:`lrkit.train.METRICS`; ``"accuracy"`` marks a classification task
    (cross-validation folds are then stratified). ``optimizer`` is a name of
    :data:`lrkit.optimizers.OPTIMIZERS`; ``lr`` (``None``: 0.01, or the documented default of
    a learning-rate-free optimizer, :data:`lrkit.optimizers.DEFAULT_LRS`) is its LR.
    """

    name: str
    make_model: Callable[[int], nn.Module]
    train: Dataset[Any]
    val: Dataset[Any]
    criterion: Callable[..., torch.Tensor]
    metric: str = "accuracy"
    optimizer: str = "sgd"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = None  # type: ignore[assignment]  # a float after __post_init__
    batch_size: int = 64
    epochs: int = 5

    def __post_init__(self) -> None:
        check_name(self.optimizer)
        if self.lr is None:
            self.lr = DEFAULT_LRS.get(self.optimizer, 0.01)

    def default_lr(self, optimizer: str | None = None) -> float | None:
        """The LR a run of ``optimizer`` (default: the task's) takes when none is given: the
        task's ``lr`` for its own optimizer, the documented default of another
        learning-rate-free one (:data:`~lrkit.optimizers.DEFAULT_LRS`), else ``None``."""
        name = check_name(optimizer or self.optimizer)
        if name == self.optimizer:
            return self.lr
        return DEFAULT_LRS.get(name)

    def make_optimizer(
        self, params: Any, lr: float | None = None, optimizer: str | None = None
    ) -> torch.optim.Optimizer:
        """The task's optimizer (or ``optimizer`` by name) over a model or parameters, at
        ``lr`` (default: :meth:`default_lr`, else the task's ``lr``)."""
        name = check_name(optimizer or self.optimizer)
        if isinstance(params, nn.Module):
            params = params.parameters()
        kwargs = self.optimizer_kwargs if name == self.optimizer else {}
        if lr is None:
            lr = self.default_lr(name) or self.lr
        return OPTIMIZERS[name](params, lr=lr, **kwargs)

    def train_loader(self, seed: int = 0, batch_size: int | None = None) -> DataLoader[Any]:
        """Shuffled training batches; the order depends only on ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            self.train, batch_size=batch_size or self.batch_size, shuffle=True, generator=gen
        )

    def val_loader(self, batch_size: int = 500) -> DataLoader[Any]:
        return DataLoader(self.val, batch_size=batch_size, shuffle=False)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch: batches of :meth:`train_loader` (any seed)."""
        return len(self.train_loader())

    def schedule_for(self, schedule: str, lr: float, epochs: int | None = None) -> Schedule:
        """``schedule`` (a bare name or a spec, see :func:`lrkit.schedules.for_run`) filled
        with ``lr`` and the length of a run of ``epochs`` epochs (default: the task's)."""
        from lrkit.schedules import for_run

        n_epochs = self._epochs(epochs)
        return for_run(schedule, lr, n_epochs * self.steps_per_epoch)

    def fit(
        self,
        lr: float | None = None,
        *,
        schedule: str | Schedule = "constant",
        optimizer: str | None = None,
        seed: int = 0,
        epochs: int | None = None,
        progress: bool = True,
    ) -> History:
        """Train a fresh ``make_model(seed)`` on this task and return its history.

        The wiring every caller shares (the CLI's ``train``, each run of a sweep, the demo):
        model from ``seed``, the task's optimizer (or ``optimizer`` by name) starting at the
        schedule's first LR, shuffled batches in the order of ``seed``, ``epochs`` epochs
        (default: the task's), validation with the task's metric after every epoch.
        ``schedule`` is a name or spec filled with ``lr`` (:meth:`schedule_for`), or a
        ready :class:`~lrkit.schedules.Schedule` (then leave ``lr`` out). A
        learning-rate-free optimizer (``"prodigy"``, ``"schedulefree_adamw"``,
        ``"schedulefree_sgd"``) may leave ``lr`` out: it runs at its documented default
        (:data:`~lrkit.optimizers.DEFAULT_LRS`, or the task's ``lr`` when it is the task's
        own optimizer), and ``history.caveats`` says so.

        >>> from lrkit.tasks import get_task
        >>> task = get_task("digits-mlp")
        >>> history = task.fit(0.1, schedule="one_cycle", epochs=2, progress=False)
        >>> [e["epoch"] for e in history.epochs], history.stop_reason
        ([1, 2], 'completed')
        """
        from lrkit.train import fit

        n_epochs = self._epochs(epochs)
        name = check_name(optimizer or self.optimizer)
        note = None
        if isinstance(schedule, str):
            if lr is None and name in DEFAULT_LRS:
                lr = self.default_lr(name)
                note = (
                    lr_free_note(name)
                    if lr == DEFAULT_LRS[name]
                    else (f"lr not given: {name} ran at the task's lr={lr:g}")
                )
            if lr is None:
                raise ValueError(
                    f"lr is needed to fill schedule {schedule!r}; pass lr, or a Schedule object"
                )
            sched = self.schedule_for(schedule, lr, n_epochs)
        elif lr is not None:
            raise ValueError(
                f"pass lr with a schedule name, or a Schedule object alone, not both (got "
                f"lr={lr!r} and {schedule.to_spec()})"
            )
        else:
            sched = schedule
        model = self.make_model(seed)
        opt = self.make_optimizer(model, lr=sched(0), optimizer=name)
        history = fit(
            model, opt, self.train_loader(seed), self.criterion, n_epochs, schedule=sched,
            val_loader=self.val_loader(), metrics=(self.metric,), seed=seed, progress=progress,
        )  # fmt: skip
        if note is not None:
            history.caveats.insert(0, note)
        return history

    def _epochs(self, epochs: int | None) -> int:
        if epochs is None:
            return self.epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1 or None (got {epochs!r})")
        return epochs

    def fold(self, fold: int, n_folds: int = 5, seed: int = 0) -> Task:
        """This task with train+val pooled and split into ``n_folds``; fold ``fold`` validates.

        scikit-learn's StratifiedKFold for classification (KFold otherwise), shuffled with
        ``seed``: the folds are disjoint and together cover every sample once.
        """
        if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
            raise ValueError(f"n_folds must be an integer >= 2 (got {n_folds!r})")
        if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < n_folds:
            raise ValueError(f"fold must be in 0..{n_folds - 1} (got {fold!r})")
        from sklearn.model_selection import KFold, StratifiedKFold

        pooled: Dataset[Any] = ConcatDataset([self.train, self.val])
        targets = targets_of(pooled)
        splitter = (
            StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            if self.metric == "accuracy"
            else KFold(n_splits=n_folds, shuffle=True, random_state=seed)
        )
        train_idx, val_idx = list(splitter.split(np.zeros(len(targets)), targets))[fold]
        return dataclasses.replace(
            self,
            name=f"{self.name}[fold {fold}/{n_folds}]",
            train=Subset(pooled, train_idx.tolist()),
            val=Subset(pooled, val_idx.tolist()),
        )
