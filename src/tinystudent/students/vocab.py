"""A word vocabulary and the base class of the students that own an embedding table.

The bilstm, cnn and bag students differ only in what they do after the lookup, so the
vocabulary, the (re)built embedding table, featurizing and masked pooling live here once.
The vocabulary is learned from the transfer set in `fit_preprocessing` (never from test
text) and saved as JSON beside the weights, so a loaded student tokenizes exactly as in
training. Tokens come from the shared `tokenize` of the hash projection: one tokenizer for
every student kind. `Vocab` and the id encoding live in the torch-free
`tinystudent.inference.preprocess`, so the exported model's runtime uses the same code; they
are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from tinystudent.inference.preprocess import PAD as PAD
from tinystudent.inference.preprocess import PAD_ID, Vocab, encode_ids
from tinystudent.inference.preprocess import UNK as UNK
from tinystudent.inference.preprocess import UNK_ID as UNK_ID
from tinystudent.students.base import Student, StudentConfig
from tinystudent.students.embeddings import check_glove_dim, glove_init

RANDOM_INIT_STD = 0.1  # small random vectors: the first layers see inputs of a sane scale


def texts_to_ids(
    texts: Sequence[str], vocab: Vocab, max_tokens: int, lowercase: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, L] (long) and mask [B, L] (float); see `encode_ids`."""
    ids, mask = encode_ids(texts, vocab, max_tokens, lowercase)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real positions: h [B, L, D], mask [B, L] -> [B, D]."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over real positions: padding can never win, whatever its value."""
    return h.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).amax(1)


class VocabConfig(StudentConfig):
    """Options every vocabulary student shares."""

    vocab_size: int = Field(
        10_000, ge=3, description="cap on vocabulary entries, specials included"
    )
    min_count: int = Field(1, ge=1, description="drop words seen fewer times in the transfer set")
    embed_dim: int = Field(50, ge=2, le=1024)
    freeze_embeddings: bool = False
    max_tokens: int = Field(64, ge=1)
    lowercase: bool = True
    dropout: float = Field(0.2, ge=0, lt=1)


class WordVectorConfig(VocabConfig):
    """Adds the choice of starting vectors shared by bilstm and cnn (Tang et al. used
    pretrained word vectors)."""

    embeddings: Literal["glove", "random"] = Field("glove", validate_default=True)

    @field_validator("embeddings")
    @classmethod
    def _glove_width(cls, v: str, info: ValidationInfo) -> str:
        check_glove_dim(v, info.data.get("embed_dim", 50))
        return v


class VocabStudent(Student):
    """Owns `vocab` and `embedding`; subclasses say how vectors start (`initial_vectors`) and
    what follows the lookup (`forward`).

    Before `fit_preprocessing` (or `load_preprocessing_state`) the table holds only the two
    specials, so every word is `<unk>`; the trainer always fits first.
    """

    cfg: VocabConfig

    def __init__(self, cfg: VocabConfig, label_names: list[str]) -> None:
        super().__init__(cfg, label_names)
        self.vocab = Vocab()
        self.embedding = self._new_embedding(len(self.vocab))

    def _new_embedding(self, size: int) -> nn.Embedding:
        emb = nn.Embedding(size, self.cfg.embed_dim, padding_idx=PAD_ID)
        with torch.no_grad():
            emb.weight.normal_(0.0, RANDOM_INIT_STD)
            emb.weight[PAD_ID].zero_()
        emb.weight.requires_grad_(not self.cfg.freeze_embeddings)
        return emb

    def vector_source(self) -> str:
        """Where starting vectors come from: "random", "glove" (and "teacher" for the bag)."""
        return "random"

    def initial_vectors(self, words: list[str]) -> np.ndarray | None:
        """[len(words), embed_dim] starting vectors, or None to keep the random ones."""
        return glove_init(words) if self.vector_source() == "glove" else None

    def fit_preprocessing(self, texts: list[str]) -> None:
        cfg = self.cfg
        self.vocab = Vocab.build(texts, cfg.vocab_size, cfg.min_count, cfg.lowercase)
        self.embedding = self._new_embedding(len(self.vocab))
        vectors = self.initial_vectors(self.vocab.words)
        if vectors is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(torch.as_tensor(vectors, dtype=torch.float32))
                self.embedding.weight[PAD_ID].zero_()

    def preprocessing_state(self) -> dict[str, Any]:
        return {"vocab": self.vocab.state()}

    def load_preprocessing_state(self, state: dict[str, Any]) -> None:
        # The table must have the saved size before `load_state_dict` fills it.
        self.vocab = Vocab.from_state(state.get("vocab", {}))
        self.embedding = self._new_embedding(len(self.vocab))

    def featurize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids, mask = texts_to_ids(texts, self.vocab, self.cfg.max_tokens, self.cfg.lowercase)
        return {"ids": ids, "mask": mask}

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Looked-up vectors [B, L, D] with padding exactly zero (convolutions see it)."""
        return self.embedding(ids) * mask.unsqueeze(-1)
