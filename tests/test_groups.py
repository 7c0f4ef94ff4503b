"""Layer groups, discriminative LRs, freezing, and the fine-tuning recipe."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit import schedules as S
from lrkit.groups import describe_groups, layer_groups, param_groups


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 3),
    )  # fmt: skip


def images(n: int = 96) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, 8, generator=gen)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    return TensorDataset(x, y)


def test_default_groups_are_top_level_children_with_parameters() -> None:
    names = [name for name, _ in layer_groups(cnn())]
    assert names == ["0", "1", "3", "6", "8"]


def test_every_parameter_lands_in_exactly_one_group() -> None:
    model = cnn()
    for groups in (None, 2, 3, lambda m: [m[:4], m[4:7], m[8]]):
        pg = lrkit.param_groups(model, 1e-3, groups=groups)  # type: ignore[arg-type]
        ids = [id(p) for g in pg for p in g["params"]]
        assert sorted(ids) == sorted(id(p) for p in model.parameters())
        assert len(ids) == len(set(ids))


def test_merged_groups_are_contiguous_and_balanced() -> None:
    model = nn.Sequential(*[nn.Linear(10, 10) for _ in range(6)])
    assert [n for n, _ in layer_groups(model, 3)] == ["0+1", "2+3", "4+5"]


def test_slice_spreads_geometrically_like_fastai() -> None:
    model = cnn()
    lrs = [g["lr"] for g in lrkit.param_groups(model, slice(1e-5, 1e-1))]
    assert lrs == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    lrs = [g["lr"] for g in lrkit.param_groups(model, slice(1e-2))]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 1e-2])


def test_layerwise_decay_and_explicit_lists() -> None:
    model = cnn()
    lrs = [g["lr"] for g in lrkit.param_groups(model, 1.0, decay=0.8)]
    assert lrs == pytest.approx([0.8**4, 0.8**3, 0.8**2, 0.8, 1.0])
    lrs = [g["lr"] for g in lrkit.param_groups(model, [1, 2, 3, 4, 5])]
    assert lrs == [1, 2, 3, 4, 5]


def test_weight_decay_spares_biases_and_norm_weights() -> None:
    model = cnn()
    pg = lrkit.param_groups(model, 1e-3, weight_decay=0.05)
    decayed = {id(p) for g in pg if g["weight_decay"] == 0.05 for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[i] for i in decayed) == ["0.weight", "3.weight", "6.weight", "8.weight"]
    opt = torch.optim.AdamW(pg)
    rows = lrkit.describe_groups(opt, print_table=False)
    assert [r["weight_decay"] for r in rows].count(0.05) == 4
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": [1.0, 2.0]}, "2 values for 5 groups"),
        ({"lr": slice(1e-1, 1e-3)}, "0 < lo <= hi"),
        ({"lr": 1e-3, "decay": 1.5}, r"decay must be in \(0, 1\]"),
        ({"lr": 1e-3, "decay": 0.0}, "decay"),
        ({"lr": 1e-3, "groups": 9}, "only 5 top-level parts"),
        ({"lr": 1e-3, "groups": lambda m: [m[0], m[8]]}, "misses"),
        ({"lr": 1e-3, "groups": lambda m: [m[:2], m[1:]]}, "two groups"),
    ],
)
def test_bad_group_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lrkit.param_groups(cnn(), **kwargs)


def train_some(model: nn.Module, steps: int = 5) -> None:
    opt = torch.optim.SGD(lrkit.param_groups(model, 0.1), lr=0.1, momentum=0.9, weight_decay=1e-2)
    data = images()
    for i in range(steps):
        opt.zero_grad()
        x, y = data[i * 16 : (i + 1) * 16]
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_frozen_params_do_not_move_and_others_do() -> None:
    model = lrkit.freeze(cnn())
    before = {n: p.clone() for n, p in model.named_parameters()}
    train_some(model)
    for name, p in model.named_parameters():
        moved = not torch.equal(before[name], p)
        head_or_bn = name.startswith(("8.", "1."))
        assert moved == head_or_bn, name
        assert (p.grad is not None) == head_or_bn


def test_freeze_upto_and_without_train_bn_and_unfreeze() -> None:
    model = lrkit.freeze(cnn(), upto=3, train_bn=False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["6.weight", "6.bias", "8.weight", "8.bias"]
    with pytest.raises(ValueError, match=r"upto must be in 0\.\.5"):
        lrkit.freeze(model, upto=7)
    lrkit.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_to_torch_and_the_finder_keep_group_ratios() -> None:
    model = cnn()
    opt = torch.optim.SGD(lrkit.param_groups(model, slice(1e-4, 1e-2)), lr=1.0)
    sched = lrkit.to_torch(opt, S.cosine(max_lr=0.02, total_steps=10))
    for _ in range(4):
        opt.step()
        sched.step()
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs[-1] == pytest.approx(S.cosine(max_lr=0.02, total_steps=10)(4))
    assert [lr / lrs[-1] for lr in lrs] == pytest.approx([0.01, 10**-1.5, 0.1, 10**-0.5, 1.0])


def test_find_lr_on_one_group_leaves_the_others_alone() -> None:
    model = cnn()
    opt = torch.optim.SGD(lrkit.param_groups(model, slice(1e-4, 1e-2)), lr=1.0)
    seen: list[list[float]] = []

    def step(m: nn.Module, batch: Any) -> torch.Tensor:
        seen.append([g["lr"] for g in opt.param_groups])
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    res = lrkit.find_lr(model, opt, DataLoader(images(), batch_size=16), step_fn=step,
                        num_steps=10, end_lr=1.0, group=2, progress=False)  # fmt: skip
    for row, lr in zip(seen, res.lrs, strict=False):
        assert row[2] == lr
        assert [row[i] for i in (0, 1, 3, 4)] == pytest.approx([1e-4, 10**-3.5, 10**-2.5, 1e-2])
    assert res.group == 2 and res.group_suggestions is None
    with pytest.raises(ValueError, match=r"group must be in 0\.\.4"):
        lrkit.find_lr(model, opt, DataLoader(images()), step_fn=step, group=5)


def test_fine_tune_recipe_end_to_end() -> None:
    model = cnn()
    train = DataLoader(images(96), batch_size=16, shuffle=True)
    val = DataLoader(images(48), batch_size=48)
    head_before = model[0].weight.clone()
    res = lrkit.fine_tune(model, train, nn.CrossEntropyLoss(), epochs=2, freeze_epochs=1,
                          val_loader=val, seed=0, progress=False)  # fmt: skip
    assert res.head_finder is not None and res.full_finder is not None
    assert len(res.head_history.epochs) == 1 and len(res.full_history.epochs) == 2
    assert res.full_lrs[-1] / res.full_lrs[0] == pytest.approx(100)
    assert res.full_history.step_lr[0] == pytest.approx(res.full_lrs[-1] / 25)  # one-cycle start
    assert not torch.equal(head_before, model[0].weight)  # the body trained in stage two
    assert all(p.requires_grad for p in model.parameters())


def test_fine_tune_with_a_given_lr_skips_the_finder() -> None:
    res = lrkit.fine_tune(cnn(), DataLoader(images(), batch_size=16), nn.CrossEntropyLoss(),
                          epochs=1, base_lr=1e-3, progress=False)  # fmt: skip
    assert res.head_finder is None and res.full_finder is None
    assert res.head_lr == 1e-3 and res.full_lrs == pytest.approx(
        [1e-5, 10**-4.5, 1e-4, 10**-3.5, 1e-3]
    )


def test_parameters_on_the_root_module_form_the_first_group() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.body = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(self.body(x * self.scale))
            return out

    model = Scaled()
    assert [name for name, _ in layer_groups(model)] == ["(root)", "body", "head"]
    pg = lrkit.param_groups(model, slice(1e-3, 1e-1))
    assert pg[0]["params"] == [model.scale] and pg[0]["lr"] == pytest.approx(1e-3)
    lrkit.freeze(model)
    assert not model.scale.requires_grad and model.head.weight.requires_grad


def _body_and_head() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16)), head=nn.Linear(16, 3)
        )
    )


def test_weight_decay_groups_have_one_numbering_the_finder_uses() -> None:
    # the issue: 2n groups numbered 0,0,1,1, so group=1 swept the features' bias group
    model = _body_and_head()
    opt = torch.optim.AdamW(param_groups(model, slice(1e-4, 1e-2), weight_decay=0.01))
    rows = describe_groups(opt, print_table=False)
    assert [r["group"] for r in rows] == [0, 1, 2, 3]
    assert [r["layer"] for r in rows] == [0, 0, 1, 1]
    assert [g["group"] for g in opt.param_groups] == [0, 1, 2, 3]
    assert [r["modules"] for r in rows] == ["features", "features", "head", "head"]


def test_find_lr_group_takes_a_name_and_sweeps_every_group_of_it() -> None:
    model = _body_and_head()
    opt = torch.optim.SGD(param_groups(model, slice(1e-4, 1e-2), weight_decay=0.01), lr=0.1)
    data = TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
    loader = DataLoader(data, batch_size=16)
    seen: list[list[float]] = []

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        seen.append([float(g["lr"]) for g in opt.param_groups])
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    res = lrkit.find_lr(model, opt, loader, step_fn=step, group="head", num_steps=5,
                        start_lr=1e-3, end_lr=1.0, progress=False)  # fmt: skip
    assert res.group == "head"
    assert seen[-1] == [1e-4, 1e-4, 1.0, 1.0]  # both halves of the head swept, features kept
    with pytest.raises(ValueError, match=r"no param group is named 'neck'; names: features, head"):
        lrkit.find_lr(model, opt, loader, step_fn=step, group="neck", progress=False)
