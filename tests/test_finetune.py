"""Fine-tuning helpers: loading a pretrained checkpoint into a model with a new head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tests.conftest import make_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrkit.finetune import load_pretrained


def test_load_pretrained_copies_matching_tensors_and_keeps_a_new_head(tmp_path: Path) -> None:
    pretrained = make_model(7)
    pretrained[2] = nn.Linear(16, 5)  # another task's head: a different shape
    ckpt = tmp_path / "pre.pt"
    torch.save({"state_dict": pretrained.state_dict()}, ckpt)
    model = make_model(0)
    head = model[2].weight.detach().clone()
    loaded, skipped = load_pretrained(model, ckpt)
    assert loaded == ["0.weight", "0.bias"] and skipped == ["2.weight", "2.bias"]
    assert torch.equal(model[0].weight, pretrained[0].weight)
    assert torch.equal(model[2].weight, head)


@pytest.mark.parametrize("wrap", ["state_dict", "model", None])
def test_load_pretrained_reads_plain_and_wrapped_state_dicts(
    wrap: str | None, tmp_path: Path
) -> None:
    state = make_model(7).state_dict()
    torch.save(state if wrap is None else {wrap: state}, tmp_path / "c.pt")
    model = make_model(0)
    loaded, skipped = load_pretrained(model, str(tmp_path / "c.pt"))
    assert len(loaded) == 4 and skipped == []
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_load_pretrained_errors_name_the_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_pretrained(make_model(0), tmp_path / "missing.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="holds no state dict"):
        load_pretrained(make_model(0), tmp_path / "list.pt")
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="matches the model's names and shapes"):
        load_pretrained(make_model(0), tmp_path / "other.pt")


def _tiny_fine_tune(monkeypatch: pytest.MonkeyPatch, head: float, whole: float) -> Any:
    """fine_tune with the two range tests' suggestions fixed (the phases' sanity check is
    what is under test, not the rules)."""
    import lrkit.finetune as ft

    picks = iter([head, whole])
    monkeypatch.setattr(ft, "_suggested", lambda result, stage: next(picks))
    data = TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
    loader = DataLoader(data, batch_size=16)
    return ft.fine_tune(make_model(), loader, nn.CrossEntropyLoss(), epochs=1, seed=0,
                        progress=False)  # fmt: skip


def test_an_unfrozen_phase_suggestion_far_below_the_heads_lr_is_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the issue: the unfrozen-phase finder suggested 5e-7 after a head LR near 1e-2, silently
    with pytest.warns(UserWarning, match=r"suggested 5e-07, 20000x below the head phase's LR"):
        result = _tiny_fine_tune(monkeypatch, head=1e-2, whole=5e-7)
    assert len(result.caveats) == 1 and "base_lr" in result.caveats[0]
    assert result.full_lrs[-1] == 5e-7  # flagged, not silently replaced


def test_a_plausible_unfrozen_phase_suggestion_raises_no_caveat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _tiny_fine_tune(monkeypatch, head=1e-2, whole=3e-3).caveats == []
    with pytest.warns(UserWarning, match="50x above"):
        _tiny_fine_tune(monkeypatch, head=1e-3, whole=5e-2)
