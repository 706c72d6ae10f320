"""What one training step hands to every objective: the student's inputs and every teacher
signal the cache holds for those rows.

Objectives read what they need from a `TrainBatch` and ignore the rest, so a new teacher
signal is one new field here, not a new argument threaded through the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from tinystudent.students.base import StudentOutput

#: The teacher's layer outputs for the student's own tokens: (hidden states, attentions).
TeacherLayers = tuple[tuple[Tensor, ...], tuple[Tensor, ...] | None]


@dataclass
class TeacherSignals:
    """Per-row teacher outputs over the whole transfer set, computed once before training.

    `probs` always exists (the soft-label cache); `embeddings` is the teacher's sentence
    vector (the embedding cache) when an objective asked for it; `layers` runs the teacher's
    encoder on the student's tokens when a layer-matching objective asked for it (those
    outputs are [layers x tokens x width] per text, too large to cache for a whole pool).
    """

    probs: np.ndarray
    embeddings: np.ndarray | None = None
    layers: Callable[[dict[str, Tensor]], TeacherLayers] | None = None

    def __post_init__(self) -> None:
        self.probs = np.asarray(self.probs, dtype=np.float32)
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if len(self.embeddings) != len(self.probs):
                raise ValueError(
                    f"{len(self.embeddings)} teacher embeddings for {len(self.probs)} texts"
                )

    @property
    def embedding_dim(self) -> int | None:
        return None if self.embeddings is None else int(self.embeddings.shape[1])


@dataclass
class TrainBatch:
    """One batch: the student's features, gold labels (-1: none) and the teacher's signals.

    `progress` is the share of training done (0 to 1), for objectives that change over
    training; `forward` runs the student again on `features` (R-drop's second pass).
    """

    features: dict[str, Tensor]
    labels: Tensor
    probs: Tensor
    embeddings: Tensor | None
    forward: Callable[[dict[str, Tensor]], StudentOutput]
    progress: float = 0.0
    layers: Callable[[dict[str, Tensor]], TeacherLayers] | None = None
    _layers_out: TeacherLayers | None = field(default=None, repr=False)

    def teacher_layers(self) -> TeacherLayers:
        """The teacher's hidden states (and attentions) for this batch, computed once."""
        if self.layers is None:
            raise ValueError("this run has no teacher layer outputs")
        if self._layers_out is None:
            with torch.no_grad():
                self._layers_out = self.layers(self.features)
        return self._layers_out
