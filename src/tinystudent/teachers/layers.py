"""An encoder teacher's layer outputs on the student's own tokens, for TinyBERT matching.

Hidden states are [layers x tokens x width] per text: for a pool of thousands of texts that is
gigabytes, so unlike probabilities and sentence embeddings they are not cached but computed
per batch by the (frozen, eval-mode) teacher encoder, once per batch whatever the number of
layer objectives.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tinystudent.devices import module_device
from tinystudent.errors import RecipeError
from tinystudent.train.batch import TeacherLayers


class LayerSource:
    """Runs `backbone` on a batch's `input_ids` / `attention_mask`; checks vocabularies."""

    def __init__(self, backbone: nn.Module, tokenizer: Any, attentions: bool = False) -> None:
        self.backbone = backbone
        self.vocab: dict[str, int] = dict(tokenizer.get_vocab())
        self.attentions = attentions
        set_impl = getattr(backbone, "set_attn_implementation", None)
        if attentions and callable(set_impl):
            set_impl("eager")  # fused attention kernels return no maps

    def check(self, student: nn.Module) -> None:
        """The student must read the teacher's tokens, or layer i of both describe different
        sequences; a clear error instead of silently matching noise."""
        tok = getattr(student, "tokenizer", None)
        if tok is None or not hasattr(tok, "get_vocab") or dict(tok.get_vocab()) != self.vocab:
            raise RecipeError(
                "train.objectives: hidden/attention matching needs a student that tokenizes "
                "as the teacher does (student kind transformer with tokenizer: teacher and "
                "teacher_model: the teacher's model)"
            )

    @torch.no_grad()
    def __call__(self, features: dict[str, Tensor]) -> TeacherLayers:
        if "input_ids" not in features:
            raise RecipeError("train.objectives: hidden/attention need a token-id student")
        self.backbone.eval()
        ids = features["input_ids"]
        here = module_device(self.backbone)  # the teacher's device; the student's is `ids`'
        out = self.backbone(
            input_ids=ids.to(here),
            attention_mask=features["attention_mask"].to(here),
            output_hidden_states=True,
            output_attentions=self.attentions,
        )
        hidden = tuple(h.to(ids.device) for h in out.hidden_states)
        attentions = tuple(a.to(ids.device) for a in out.attentions) if self.attentions else None
        return hidden, attentions
