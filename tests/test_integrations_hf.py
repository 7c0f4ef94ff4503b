"""lrkit.integrations.hf against the real transformers Trainer, on a tiny BERT built from a
config (random weights, no downloads): find_lr(trainer), use_schedule, the per-layer split,
fine_tune(step_fn=...) and fit(step_fn=..., metric=...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

transformers = pytest.importorskip("transformers", reason="needs lrkit[hf]")

import lrkit  # noqa: E402
from lrkit import schedules  # noqa: E402
from lrkit.integrations.hf import find_lr, use_schedule  # noqa: E402

LAYERS = 3


class Pairs(Dataset[dict[str, torch.Tensor]]):
    """Token sequences labelled by whether token 1 occurs in them: learnable in a few steps."""

    def __init__(self, n: int = 64, length: int = 8, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(2, 30, (n, length), generator=gen)
        flag = torch.rand(n, generator=gen) < 0.5
        self.ids[flag, 3] = 1
        self.labels = flag.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": self.labels[i]}


def bert(seed: int = 0, masked_lm: bool = False) -> Any:
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=LAYERS, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    cls = transformers.BertForMaskedLM if masked_lm else transformers.BertForSequenceClassification
    return cls(config)


def trainer(tmp_path: Path, max_steps: int = 12, **args: Any) -> Any:
    arguments = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=max_steps,
        learning_rate=1e-3, weight_decay=0.01, report_to=[], use_cpu=True, save_strategy="no",
        logging_strategy="no", disable_tqdm=True, seed=0, **args,
    )  # fmt: skip
    return transformers.Trainer(model=bert(), args=arguments, train_dataset=Pairs())


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_find_lr_on_a_trainer_uses_its_parts_and_restores_them(tmp_path: Path) -> None:
    calls = []

    class Counting(transformers.Trainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return super().compute_loss(model, inputs, *args, **kwargs)

    plain = trainer(tmp_path)
    t = Counting(model=plain.model, args=plain.args, train_dataset=Pairs())
    before = state(t.model)
    res = find_lr(t, num_steps=30, seed=0, progress=False)
    assert len(calls) == len(res.curves[0].lrs) > 10  # the Trainer's compute_loss, per step
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    assert t.optimizer is None  # built for the test and dropped: train() builds its own


def test_find_lr_keeps_an_existing_trainer_optimizer_and_its_state(tmp_path: Path) -> None:
    t = trainer(tmp_path)
    opt = t.create_optimizer()
    groups = [dict(g, params=None) for g in opt.param_groups]
    find_lr(t, num_steps=20, seed=0, progress=False)
    assert t.optimizer is opt and not opt.state  # Adam moments restored (none before)
    assert [dict(g, params=None) for g in opt.param_groups] == groups


def test_use_schedule_drives_the_trainers_optimizer_step_by_step(tmp_path: Path) -> None:
    steps = 12
    schedule = schedules.warmup(schedules.cosine(max_lr=1e-3, total_steps=steps - 4),
                                warmup_steps=4)  # fmt: skip
    seen: list[tuple[int, float, float]] = []

    class Record(transformers.TrainerCallback):  # type: ignore[misc]
        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            groups = kw["optimizer"].param_groups
            seen.append((state.global_step, groups[0]["lr"], groups[1]["lr"]))

    t = trainer(tmp_path, max_steps=steps)
    scheduler = use_schedule(t, schedule)
    t.add_callback(Record())
    t.train()
    assert t.lr_scheduler is scheduler  # not replaced by lr_scheduler_type's
    assert len(t.optimizer.param_groups) == 2  # HF's decay / no-decay groups, kept
    assert [s for s, _, _ in seen] == list(range(steps))
    for step, lr0, lr1 in seen:
        assert lr0 == pytest.approx(schedule(step), rel=1e-12)
        assert lr1 == pytest.approx(schedule(step), rel=1e-12)


def test_param_groups_of_a_bert_model_has_one_group_per_layer() -> None:
    model = bert()
    groups = lrkit.param_groups(model, 1e-3, decay=0.5)
    names = [g["name"] for g in groups]
    # before: 2 groups (bert, classifier), so decay= never reached the encoder layers
    assert len(groups) == LAYERS + 2
    assert names[0] == "bert.embeddings"
    assert names[1:-1] == [f"bert.encoder.layer.{i}" for i in range(LAYERS)]
    assert names[-1] == "bert.pooler+classifier"
    assert [g["lr"] for g in groups] == [1e-3 * 0.5 ** (LAYERS + 1 - i) for i in range(LAYERS + 2)]


def test_a_tied_lm_head_is_split_per_layer_with_the_tied_weight_in_the_embeddings() -> None:
    model = bert(masked_lm=True)  # the default split refused it: one weight in two groups
    groups = lrkit.param_groups(model, 1e-3, decay=0.5)
    assert len(groups) == LAYERS + 2
    embedding = model.get_input_embeddings().weight
    assert any(p is embedding for p in groups[0]["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_fine_tune_takes_a_step_fn_for_models_that_return_their_loss() -> None:
    model = bert()
    loader = DataLoader(Pairs(), batch_size=8, shuffle=True)
    val = DataLoader(Pairs(32, seed=1), batch_size=16)

    def accuracy(m: torch.nn.Module, batch: Any) -> float:
        return float((m(**batch).logits.argmax(-1) == batch["labels"]).float().mean())

    res = lrkit.fine_tune(model, loader, step_fn=lambda m, b: m(**b).loss, epochs=1,
                          val_loader=val, metric=accuracy, seed=0, progress=False)  # fmt: skip
    assert res.head_finder is not None and res.full_finder is not None
    assert len(res.full_lrs) == LAYERS + 2  # per-layer discriminative LRs
    assert 0.0 <= res.full_history.final["accuracy"] <= 1.0
    assert "val_loss" in res.full_history.final


def test_fit_with_step_fn_reports_a_metric_beside_the_val_loss() -> None:
    model = bert()
    loader = DataLoader(Pairs(), batch_size=8)
    val = DataLoader(Pairs(32, seed=1), batch_size=8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = lrkit.fit(model, opt, loader, epochs=1, step_fn=lambda m, b: m(**b).loss,
                        val_loader=val, progress=False,
                        metric=lambda m, b: (m(**b).logits.argmax(-1) == b["labels"]).mean(
                            dtype=torch.float)
                        )  # fmt: skip
    model.eval()
    with torch.no_grad():
        expected = sum(
            float((model(**b).logits.argmax(-1) == b["labels"]).float().mean()) for b in val
        ) / len(val)
    assert history.final["metric"] == pytest.approx(expected)
