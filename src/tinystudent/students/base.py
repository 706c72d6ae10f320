"""The one interface every student kind shares, so the trainer never branches on the kind.

A student turns raw texts into tensors itself (`featurize`), because its preprocessing (a
hash projection, a vocabulary) is part of the model and must be saved, exported and run
identically everywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from tinystudent.io import read_json, save_safetensors, write_json


class StudentConfig(BaseModel):
    """Base of every student's config: unknown keys are errors that name the key."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StudentOutput:
    """Logits; the sentence vector the head reads (`pooled`, for embedding objectives); hidden
    states and attentions where the student has them (for TinyBERT-style layer matching)."""

    logits: torch.Tensor
    pooled: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class Student(nn.Module, ABC):
    """Build from a typed config; featurize texts; forward returns `StudentOutput`."""

    kind: ClassVar[str]
    Config: ClassVar[type[StudentConfig]]

    def __init__(self, cfg: StudentConfig, label_names: list[str]) -> None:
        super().__init__()
        self.cfg = cfg
        self.label_names = list(label_names)
        # Multi-label students read each logit as an independent sigmoid and decide each
        # label at its own threshold (chosen after training on held-out transfer text).
        self.multi_label = False
        self.thresholds: list[float] | None = None

    def set_multi_label(self, thresholds: list[float] | None = None) -> None:
        """Make this a multi-label student (sigmoid outputs); `thresholds` default to 0.5."""
        n = len(self.label_names)
        if thresholds is not None and len(thresholds) != n:
            raise ValueError(f"{len(thresholds)} thresholds for {n} labels")
        self.multi_label = True
        self.thresholds = [0.5] * n if thresholds is None else [float(t) for t in thresholds]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over classes, or one sigmoid per label for a multi-label student."""
        logits = logits.float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, -1)

    # -- preprocessing ---------------------------------------------------------------------
    def fit_preprocessing(self, texts: list[str]) -> None:  # noqa: B027 - optional hook
        """Students with a vocabulary build it here from the transfer set; others need nothing."""

    def preprocessing_state(self) -> dict[str, Any]:
        """JSON-able state of the preprocessing (e.g. a vocabulary), saved beside the weights."""
        return {}

    def load_preprocessing_state(self, state: dict[str, Any]) -> None:  # noqa: B027
        """Restore what `preprocessing_state` returned."""

    @abstractmethod
    def featurize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Texts to the tensors `forward` takes; deterministic and free of learned state."""

    @abstractmethod
    def forward(self, **features: torch.Tensor) -> StudentOutput: ...

    # -- inference -------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_proba(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Probabilities in input order; batches are length-sorted to limit padding."""
        self.eval()
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            logits = self(**self.featurize([texts[j] for j in idx])).logits
            out[idx] = self.probabilities(logits).numpy()
        return out

    def predict(self, texts: list[str]) -> list[str]:
        if self.multi_label:
            raise ValueError("a multi-label student predicts label sets: use predict_labels")
        return [self.label_names[i] for i in self.predict_proba(texts).argmax(1)]

    def predict_labels(self, texts: list[str]) -> list[list[str]]:
        """Each text's labels over their thresholds (multi-label), or its one best label."""
        probs = self.predict_proba(texts)
        if not self.multi_label:
            return [[self.label_names[i]] for i in probs.argmax(1)]
        over = probs >= np.asarray(self.thresholds)[None, :]
        return [[n for n, on in zip(self.label_names, row) if on] for row in over]

    # -- persistence -----------------------------------------------------------------------
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, out_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Weights as safetensors and a JSON config; `extra` lands in the JSON (e.g. metrics)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_safetensors(out / "student.safetensors", self.state_dict(), {"kind": self.kind})
        write_json(
            out / "student.json",
            {
                "kind": self.kind,
                "label_names": self.label_names,
                "config": self.cfg.model_dump(),
                "preprocessing": self.preprocessing_state(),
                "params": self.num_params(),
                **(
                    {"multi_label": True, "thresholds": self.thresholds} if self.multi_label else {}
                ),
                **(extra or {}),
            },
        )

    @staticmethod
    def read_meta(model_dir: str | Path) -> dict[str, Any]:
        path = Path(model_dir) / "student.json"
        if not path.exists():
            from tinystudent.errors import TinyStudentError

            raise TinyStudentError(f"{model_dir}: no student.json; is this a saved student?")
        meta: dict[str, Any] = read_json(path)
        return meta
