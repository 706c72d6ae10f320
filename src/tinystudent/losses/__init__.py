"""Distillation objectives, one per module.

Each objective's math is a pure function of tensors; the ``nn.Module`` wrappers hold the
weights and settings and return a ``dict[str, Tensor]`` of already-weighted named parts, so
the trainer can merge several losses' dicts, sum the values for ``backward()`` and log each.
"""

from tinystudent.losses.ce import NO_LABEL, hard_ce
from tinystudent.losses.distill import KD_KINDS, DistillationLoss
from tinystudent.losses.hidden import (
    AttentionLoss,
    HiddenStateLoss,
    attention_mse,
    hidden_mse,
    masked_mse,
    uniform_layer_map,
)
from tinystudent.losses.kd import PROB_FLOOR, kd_kl, kd_mse
from tinystudent.losses.rdrop import RDropLoss, symmetric_kl
from tinystudent.losses.schedule import SCHEDULE_KINDS, ContinuationSchedule

__all__ = [
    "KD_KINDS",
    "NO_LABEL",
    "PROB_FLOOR",
    "SCHEDULE_KINDS",
    "AttentionLoss",
    "ContinuationSchedule",
    "DistillationLoss",
    "HiddenStateLoss",
    "RDropLoss",
    "attention_mse",
    "hard_ce",
    "hidden_mse",
    "kd_kl",
    "kd_mse",
    "masked_mse",
    "symmetric_kl",
    "uniform_layer_map",
]
