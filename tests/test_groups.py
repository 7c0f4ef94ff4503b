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


# --- timm's conventions, without timm -------------------------------------------------------
# Two tiny models that speak timm's protocol the way timm's VisionTransformer and ResNet do
# (same parameter layout and the same group_matcher/no_weight_decay), with the groups timm's
# param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.75,
# no_weight_decay_list=model.no_weight_decay()) gives them, derived by hand below.


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Linear(dim, dim)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, 4, 4)


class TinyViT(nn.Module):
    def __init__(self, depth: int = 4, dim: int = 8) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, dim))
        self.blocks = nn.Sequential(*[Block(dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "reg_token", "dist_token"}

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return {
            "stem": r"^cls_token|reg_token|pos_embed|patch_embed",
            "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))],
        }


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, bias=False)
        self.bn = nn.BatchNorm2d(ch)


class TinyResNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...] = (2, 1, 1, 1), ch: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, ch, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            nn.Sequential(*[ResBlock(ch) for _ in range(n)]) for n in blocks
        )
        self.fc = nn.Linear(ch, 3)

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return {"stem": r"^conv1|bn1|maxpool",
                "blocks": r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)"}  # fmt: skip


def _table(model: nn.Module, groups: list[dict[str, Any]]) -> list[tuple[list[str], float, float]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [([names[id(p)] for p in g["params"]], g["lr_scale"], g["weight_decay"]) for g in groups]


def _block_groups(prefix: str, scale: float) -> list[tuple[list[str], float, float]]:
    plain = [f"{prefix}.{n}" for n in ("norm1.weight", "norm1.bias", "qkv.bias",
                                       "norm2.weight", "norm2.bias", "mlp.bias")]  # fmt: skip
    return [(plain, scale, 0.0), ([f"{prefix}.qkv.weight", f"{prefix}.mlp.weight"], scale, 0.05)]


def test_a_vit_gets_timms_twelve_groups_and_six_levels() -> None:
    model = TinyViT()
    groups = lrkit.param_groups(model, 1e-3, decay=0.75, weight_decay=0.05)
    last_block = _block_groups("blocks.3", 0.75)
    last_block[0][0].extend(["norm.weight", "norm.bias"])  # the final norm joins the last block
    expected = [
        (["cls_token", "pos_embed", "patch_embed.proj.bias"], 0.75**5, 0.0),
        (["patch_embed.proj.weight"], 0.75**5, 0.05),
        *_block_groups("blocks.0", 0.75**4),
        *_block_groups("blocks.1", 0.75**3),
        *_block_groups("blocks.2", 0.75**2),
        *last_block,
        (["head.weight"], 1.0, 0.05),
        (["head.bias"], 1.0, 0.0),
    ]
    assert _table(model, groups) == expected  # scales bit for bit: 0.75 ** (5 - level)
    assert len(groups) == 12 and len({g["layer"] for g in groups}) == 6
    assert [g["lr"] for g in groups] == [1e-3 * g["lr_scale"] for g in groups]
    assert len(torch.optim.AdamW(groups).param_groups) == 12


def test_vit_levels_are_named_after_what_they_hold() -> None:
    names = [name for name, _ in layer_groups(TinyViT())]
    assert names == ["cls_token+pos_embed+patch_embed", "blocks.0", "blocks.1", "blocks.2",
                     "blocks.3+norm", "head"]  # fmt: skip


def test_a_resnet_gets_timms_groups_one_level_per_block() -> None:
    model = TinyResNet()
    groups = lrkit.param_groups(model, 1e-3, decay=0.75, weight_decay=0.05)
    blocks = ["layer1.0", "layer1.1", "layer2.0", "layer3.0", "layer4.0"]
    expected = [(["conv1.weight"], 0.75**6, 0.05), (["bn1.weight", "bn1.bias"], 0.75**6, 0.0)]
    for level, block in enumerate(blocks, start=1):
        scale = 0.75 ** (6 - level)
        expected += [([f"{block}.conv.weight"], scale, 0.05),
                     ([f"{block}.bn.weight", f"{block}.bn.bias"], scale, 0.0)]  # fmt: skip
    expected += [(["fc.weight"], 1.0, 0.05), (["fc.bias"], 1.0, 0.0)]
    assert _table(model, groups) == expected


def test_no_weight_decay_is_honoured_without_a_matcher() -> None:
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Parameter(torch.zeros(4, 4))
            self.body = nn.Linear(4, 4)

        def no_weight_decay(self) -> set[str]:
            return {"emb*"}

    model = Tokens()
    groups = lrkit.param_groups(model, 1e-3, weight_decay=0.1)
    decayed = [id(p) for g in groups if g["weight_decay"] == 0.1 for p in g["params"]]
    assert decayed == [id(model.body.weight)]


def test_a_splitter_can_place_root_parameters() -> None:
    model = TinyViT()

    def split(m: nn.Module) -> list[Any]:
        return [[m.cls_token, m.pos_embed, m.patch_embed], *m.blocks, [m.norm, m.head]]

    groups = lrkit.param_groups(model, 1e-2, groups=split, decay=0.5)
    assert [g["name"] for g in groups][:2] == ["cls_token+pos_embed+patch_embed", "blocks.0"]
    assert groups[0]["params"][0] is model.cls_token and groups[0]["params"][1] is model.pos_embed
    assert [g["lr_scale"] for g in groups] == [0.5**5, 0.5**4, 0.5**3, 0.5**2, 0.5, 1.0]
    with pytest.raises(ValueError, match="misses 2 parameters"):
        lrkit.param_groups(model, 1e-2, groups=lambda m: [m.patch_embed, m.blocks, m.norm, m.head])


def test_freeze_follows_the_matcher_levels() -> None:
    model = lrkit.freeze(TinyViT(), upto=2, train_bn=False)  # the stem and blocks.0
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen[:4] == ["cls_token", "pos_embed", "patch_embed.proj.weight",
                          "patch_embed.proj.bias"]  # fmt: skip
    assert {n.split(".")[1] for n in frozen[4:]} == {"0"}


def test_every_group_carries_lr_scale_consistent_with_its_lr() -> None:
    for lr in (slice(1e-4, 1e-2), 1e-2, [1.0, 2.0, 4.0, 4.0, 8.0]):
        groups = lrkit.param_groups(cnn(), lr)  # type: ignore[arg-type]
        top = max(g["lr"] for g in groups)
        assert [g["lr_scale"] for g in groups] == pytest.approx([g["lr"] / top for g in groups])


def _timm() -> Any:
    try:
        import timm
    except Exception as exc:  # ImportError, or torchvision failing to load beside this torch
        pytest.skip(f"timm does not import here ({type(exc).__name__}: {exc}); timm needs "
                    "torchvision, whose build must match torch")  # fmt: skip
    return timm


@pytest.mark.parametrize("arch", ["vit", "resnet"])
def test_groups_equal_real_timms_param_groups_layer_decay(arch: str) -> None:
    timm = _timm()
    from timm.optim import param_groups_layer_decay

    if arch == "vit":
        model = timm.models.VisionTransformer(img_size=16, patch_size=8, embed_dim=16, depth=4,
                                              num_heads=2, num_classes=3)  # fmt: skip
    else:
        from timm.models.resnet import BasicBlock, ResNet

        model = ResNet(BasicBlock, [2, 1, 1, 1], num_classes=3)
    nwd = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    theirs = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.75,
                                      no_weight_decay_list=nwd)  # fmt: skip
    ours = lrkit.param_groups(model, 1e-3, decay=0.75, weight_decay=0.05)
    assert [(g["lr_scale"], g["weight_decay"], [id(p) for p in g["params"]]) for g in ours] == [
        (g["lr_scale"], g["weight_decay"], [id(p) for p in g["params"]]) for g in theirs
    ]


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
