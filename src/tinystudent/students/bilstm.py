"""BiLSTM student (Tang et al. 2019, "Distilling task-specific knowledge from BERT into
simple neural networks"): word embeddings (GloVe by default), a bidirectional LSTM, masked
max + mean pooling and an MLP head.

The backward direction runs a plain forward LSTM over each text reversed within its own
length instead of a packed sequence: right padding then never reaches a real token in either
direction (so a text's output does not depend on its batch), and the graph stays a plain
LSTM that ONNX export handles, which packed sequences are not.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from tinystudent.students.base import StudentConfig, StudentOutput
from tinystudent.students.vocab import VocabStudent, WordVectorConfig, masked_max, masked_mean


class BiLSTMConfig(WordVectorConfig):
    hidden: int = Field(128, ge=4, description="LSTM units per direction")
    layers: int = Field(1, ge=1, le=4)
    head_hidden: int = Field(128, ge=4, description="width of the MLP head")


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x [B, L, D] within its first `lengths[b]` steps; padding
    stays where it is. Its own inverse."""
    t = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    n = lengths.unsqueeze(1)
    idx = torch.where(t < n, n - 1 - t, t)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class BiLSTMLayer(nn.Module):
    """[B, L, D] -> [B, L, 2H]: forward states next to backward states."""

    def __init__(self, d_in: int, hidden: int) -> None:
        super().__init__()
        self.fwd = nn.LSTM(d_in, hidden, batch_first=True)
        self.bwd = nn.LSTM(d_in, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h_f, _ = self.fwd(x)
        h_b, _ = self.bwd(reverse_padded(x, lengths))
        return torch.cat([h_f, reverse_padded(h_b, lengths)], dim=-1)


class BiLSTM(VocabStudent):
    kind: ClassVar[str] = "bilstm"
    Config: ClassVar[type[StudentConfig]] = BiLSTMConfig
    cfg: BiLSTMConfig

    def __init__(self, cfg: BiLSTMConfig, label_names: list[str]) -> None:
        super().__init__(cfg, label_names)
        dims = [cfg.embed_dim] + [2 * cfg.hidden] * (cfg.layers - 1)
        self.lstm = nn.ModuleList(BiLSTMLayer(d, cfg.hidden) for d in dims)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Sequential(
            nn.Linear(4 * cfg.hidden, cfg.head_hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_hidden, len(label_names)),
        )

    def vector_source(self) -> str:
        return self.cfg.embeddings

    def forward(self, **features: torch.Tensor) -> StudentOutput:
        ids, mask = features["ids"], features["mask"]
        lengths = mask.sum(1).long()
        h = self.dropout(self.embed(ids, mask))
        hidden_states = []
        for layer in self.lstm:
            h = self.dropout(layer(h, lengths)) * mask.unsqueeze(-1)
            hidden_states.append(h)
        pooled = torch.cat([masked_mean(h, mask), masked_max(h, mask)], dim=-1)
        return StudentOutput(
            logits=self.head(pooled), pooled=pooled, hidden_states=tuple(hidden_states)
        )
