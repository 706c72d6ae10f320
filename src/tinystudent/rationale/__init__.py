"""Rationale (chain-of-thought) distillation: a small generative student learns a teacher's
step-by-step solutions, as its output (Fine-tune-CoT) or as a second task beside the answer
(distilling step-by-step), or as the input it must actually use (PINTO: a frozen prompted
LM writes the rationale, a counterfactual term punishes ignoring it). Heavy imports (torch,
transformers, reasoning-gym, peft) happen inside the functions that need them.
"""

from tinystudent.rationale.data import Example, gsm_split, load_jsonl
from tinystudent.rationale.format import Mode, Task
from tinystudent.rationale.gym import gym_scorer, gym_split
from tinystudent.rationale.pinto import PintoConfig, RationalizerSpec
from tinystudent.rationale.pipeline import run_rationale
from tinystudent.rationale.recipe import RationaleRecipe, load_rationale_recipe
from tinystudent.rationale.solvers import SOLVERS, SolverRationales
from tinystudent.rationale.train import RationaleTrainConfig

__all__ = [
    "Example",
    "Mode",
    "PintoConfig",
    "RationaleRecipe",
    "RationaleTrainConfig",
    "RationalizerSpec",
    "SOLVERS",
    "SolverRationales",
    "Task",
    "gsm_split",
    "gym_scorer",
    "gym_split",
    "load_jsonl",
    "load_rationale_recipe",
    "run_rationale",
]
