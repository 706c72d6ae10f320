"""Kim (2014) CNN student: word embeddings, parallel 1-d convolutions of several widths,
max-over-time pooling, dropout and a linear head.

The convolutions are "wide" (k - 1 zeros on both sides) and padding embeddings are exactly
zero, so a window that overhangs a text's end sees the same zeros whether the batch pads the
text or not; only windows touching at least one real token enter the max. A text therefore
scores the same alone or next to a longer one, and a text shorter than the widest kernel
still has windows.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from tinystudent.students.base import StudentConfig, StudentOutput
from tinystudent.students.vocab import VocabStudent, WordVectorConfig, masked_max


class CNNConfig(WordVectorConfig):
    kernel_sizes: list[Annotated[int, Field(ge=1, le=16)]] = Field(
        default_factory=lambda: [2, 3, 4], min_length=1
    )
    filters: int = Field(100, ge=1, description="feature maps per kernel size")
    dropout: float = Field(0.3, ge=0, lt=1)


class TextCNN(VocabStudent):
    kind: ClassVar[str] = "cnn"
    Config: ClassVar[type[StudentConfig]] = CNNConfig
    cfg: CNNConfig

    def __init__(self, cfg: CNNConfig, label_names: list[str]) -> None:
        super().__init__(cfg, label_names)
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg.embed_dim, cfg.filters, k, padding=k - 1) for k in cfg.kernel_sizes
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.filters * len(cfg.kernel_sizes), len(label_names))

    def vector_source(self) -> str:
        return self.cfg.embeddings

    def forward(self, **features: torch.Tensor) -> StudentOutput:
        ids, mask = features["ids"], features["mask"]
        x = self.embed(ids, mask).transpose(1, 2)  # [B, D, L]
        lengths = mask.sum(1, keepdim=True)
        pooled = []
        for conv, k in zip(self.convs, self.cfg.kernel_sizes):
            h = F.relu(conv(x)).transpose(1, 2)  # [B, L + k - 1, F]; output j sees j-k+1..j
            valid = (torch.arange(h.shape[1], device=h.device).unsqueeze(0) < lengths + k - 1).to(
                mask.dtype
            )
            pooled.append(masked_max(h, valid))
        # No hidden_states: feature maps are longer than the text (wide convolutions), so
        # they do not line up with tokens for a hidden-state loss.
        vector = torch.cat(pooled, dim=-1)
        return StudentOutput(logits=self.head(self.dropout(vector)), pooled=vector)
