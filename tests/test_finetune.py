"""Fine-tuning helpers: loading a pretrained checkpoint into a model with a new head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.conftest import make_model
from torch import nn

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
