"""Static embedding bag: the mean of a text's word vectors, then a small MLP.

The fastest student there is (one lookup and an average per text). With `init="teacher"` its
vectors start model2vec-style from the teacher itself: every vocabulary word is encoded
alone by the teacher's encoder, mean-pooled, and reduced by PCA to `embed_dim`, so the bag
begins in the teacher's semantic space without any word-vector package; distillation then
tunes the vectors to the task.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from tinystudent.students.base import StudentConfig, StudentOutput
from tinystudent.students.embeddings import check_glove_dim, teacher_init
from tinystudent.students.vocab import VocabConfig, VocabStudent, masked_mean


class BagConfig(VocabConfig):
    embed_dim: int = Field(64, ge=2, le=1024)
    # Long texts need it (BBC articles at k = 64: 0.948 reading 128 tokens, 0.962 reading 512,
    # bench/ablation.py); short ones are unaffected, and a bag's cost is linear in tokens.
    max_tokens: int = Field(512, ge=1, description="tokens read per text")
    dropout: float = Field(0.1, ge=0, lt=1)
    head_hidden: int = Field(128, ge=0, description="MLP width; 0 = a linear head")
    init: Literal["teacher", "glove", "random"] = Field("teacher", validate_default=True)
    teacher_model: str = Field(
        "minilm-l6", description="encoder whose word vectors init='teacher' reduces"
    )
    teacher_batch_size: int = Field(512, ge=1)

    @field_validator("init")
    @classmethod
    def _glove_width(cls, v: str, info: ValidationInfo) -> str:
        check_glove_dim(v, info.data.get("embed_dim", 64))
        return v


class EmbeddingBag(VocabStudent):
    kind: ClassVar[str] = "bag"
    Config: ClassVar[type[StudentConfig]] = BagConfig
    cfg: BagConfig

    def __init__(self, cfg: BagConfig, label_names: list[str]) -> None:
        super().__init__(cfg, label_names)
        n = len(label_names)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head: nn.Module = (
            nn.Sequential(
                nn.Linear(cfg.embed_dim, cfg.head_hidden),
                nn.ReLU(),
                nn.Dropout(cfg.dropout),
                nn.Linear(cfg.head_hidden, n),
            )
            if cfg.head_hidden
            else nn.Linear(cfg.embed_dim, n)
        )

    def vector_source(self) -> str:
        return self.cfg.init

    def initial_vectors(self, words: list[str]) -> np.ndarray | None:
        if self.cfg.init == "teacher":
            cfg = self.cfg
            return teacher_init(words, cfg.embed_dim, cfg.teacher_model, 2, cfg.teacher_batch_size)
        return super().initial_vectors(words)

    def forward(self, **features: torch.Tensor) -> StudentOutput:
        ids, mask = features["ids"], features["mask"]
        pooled = masked_mean(self.embed(ids, mask), mask)
        return StudentOutput(logits=self.head(self.dropout(pooled)), pooled=pooled)
