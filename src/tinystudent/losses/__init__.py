"""The math of the distillation objectives: pure functions of tensors, one family per module.

The objectives a recipe names (`tinystudent.train.objectives`) wrap these with their weights
and options; keeping the math here lets it be tested on its own (gradients, edge cases).
"""

from tinystudent.losses.bce import soft_bce
from tinystudent.losses.ce import NO_LABEL, hard_ce
from tinystudent.losses.hidden import (
    AttentionLoss,
    HiddenStateLoss,
    attention_mse,
    hidden_mse,
    masked_mse,
    uniform_layer_map,
)
from tinystudent.losses.kd import PROB_FLOOR, kd_kl, kd_mse
from tinystudent.losses.rdrop import symmetric_kl

__all__ = [
    "NO_LABEL",
    "PROB_FLOOR",
    "AttentionLoss",
    "HiddenStateLoss",
    "attention_mse",
    "hard_ce",
    "hidden_mse",
    "kd_kl",
    "kd_mse",
    "masked_mse",
    "soft_bce",
    "symmetric_kl",
    "uniform_layer_map",
]
