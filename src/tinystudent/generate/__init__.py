"""Generation stage: new in-domain texts for the teacher to label (Generation-Distillation).

`build_transfer_set(split, GenerationConfig(...), out_dir)` is the entry point; the modules
each do one job: `models` (where the LM comes from), `generator` (backends), `strategies`
(fine-tune-then-sample, label prompts), `augment` (cheap edits), `filters` (leak guard,
dedup, quality), `shards` (resumable storage), `run` (budget and composition).
"""

from tinystudent.generate.augment import (
    GloveSwapper,
    NgramSampler,
    TokenMasker,
    augment_texts,
    build_augmenters,
)
from tinystudent.generate.filters import (
    LeakGuard,
    NearDupIndex,
    TransferFilter,
    confidence_mask,
)
from tinystudent.generate.generator import (
    GenerationError,
    Generator,
    LlamaCppGenerator,
    OpenAIGenerator,
    TransformersGenerator,
    make_generator,
)
from tinystudent.generate.pool import generate_on_ray
from tinystudent.generate.run import GenerationConfig, build_transfer_set
from tinystudent.generate.strategies import FinetuneSampler, PromptSampler, finetune_causal_lm

__all__ = [
    "FinetuneSampler",
    "GenerationConfig",
    "GenerationError",
    "Generator",
    "GloveSwapper",
    "LeakGuard",
    "LlamaCppGenerator",
    "NearDupIndex",
    "NgramSampler",
    "OpenAIGenerator",
    "PromptSampler",
    "TokenMasker",
    "TransferFilter",
    "TransformersGenerator",
    "augment_texts",
    "build_augmenters",
    "build_transfer_set",
    "confidence_mask",
    "finetune_causal_lm",
    "generate_on_ray",
    "make_generator",
]
