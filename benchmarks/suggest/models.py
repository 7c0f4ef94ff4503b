"""The suite's models that lrkit.tasks does not ship: transformers, a residual BN net."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _blocks(dim: int, heads: int, depth: int) -> nn.TransformerEncoder:
    """``depth`` pre-LN transformer blocks (no dropout: the runs are short and deterministic)."""
    layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True,
                                       norm_first=True)  # fmt: skip
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class ViT(nn.Module):
    """A Vision Transformer for 8×8 images: 2×2 patches (16 tokens), a CLS token, pre-LN."""

    def __init__(self, dim: int = 32, heads: int = 2, depth: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.patch = nn.Linear(4, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, 17, dim))
        self.blocks = _blocks(dim, heads, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img = x.reshape(-1, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(-1, 16, 4)
        tokens = torch.cat([self.cls.expand(len(img), -1, -1), self.patch(img)], 1) + self.pos
        out: torch.Tensor = self.head(self.norm(self.blocks(tokens)[:, 0]))
        return out


class TinyLM(nn.Module):
    """A causal transformer LM; returns the logits of the last ``answer`` positions only
    (``[batch, answer, vocab]``), those that predict the answer tokens."""

    def __init__(self, vocab: int, length: int, answer: int, dim: int = 48, heads: int = 4,
                 depth: int = 2) -> None:  # fmt: skip
        super().__init__()
        self.answer = answer
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(1, length, dim))
        self.blocks = _blocks(dim, heads, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos[:, : x.shape[1]]
        h = self.blocks(h, mask=self.mask, is_causal=True)
        out: torch.Tensor = self.head(self.norm(h[:, -self.answer :]))
        return out


class EncoderClassifier(nn.Module):
    """A transformer encoder over token sequences, mean-pooled, then a linear classifier."""

    def __init__(self, vocab: int, length: int, classes: int, dim: int = 32, heads: int = 2,
                 depth: int = 2) -> None:  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(1, length, dim))
        self.blocks = _blocks(dim, heads, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.embed(x) + self.pos)
        out: torch.Tensor = self.head(self.norm(h.mean(1)))
        return out


class SequenceCE(nn.Module):
    """Cross-entropy over ``[batch, positions, classes]`` logits and ``[batch, positions]``."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.transpose(1, 2), targets)


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = F.relu(x + self.body(x))
        return out


class ResNetBN(nn.Module):
    """A stem, two residual BatchNorm blocks, global average pooling: 8×8 digits."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(), Residual(channels), Residual(channels), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(channels, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x.reshape(-1, 1, 8, 8))
        return out
