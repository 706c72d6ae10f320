"""Embedding distillation (issue #8): a tiny encoder that keeps a sentence teacher's geometry.

A sentence-transformers teacher embeds unlabelled text once (content-keyed cache); a tiny
student (pqrnn, bag, transformer, ...) with a projection head learns to reproduce those vectors
(MSE + cosine + DisCo-style InfoNCE); it is scored without gold labels (similarity Spearman and
neighbour recall against the teacher) and by a linear probe on labelled datasets.
"""

from tinystudent.embeddings.data import EmbedDataSpec, TextSource, TransferSet, collect_texts
from tinystudent.embeddings.evaluate import (
    EvalConfig,
    EvalTask,
    evaluate_encoder,
    linear_probe_accuracy,
    neighbour_recall,
    similarity_spearman,
)
from tinystudent.embeddings.objectives import (
    ObjectiveConfig,
    cosine_loss,
    distill_objective,
    info_nce,
    mse_loss,
)
from tinystudent.embeddings.pipeline import run_embed_distill
from tinystudent.embeddings.recipe import EmbedRecipe, load_embed_recipe, parse_embed_recipe
from tinystudent.embeddings.student import EmbeddingStudent, load_embedding_student
from tinystudent.embeddings.teacher import CachedTeacher, SentenceTeacher, SentenceTeacherConfig
from tinystudent.embeddings.train import (
    EmbedFitResult,
    EmbedTrainConfig,
    distill_embedding_student,
    fit_embedding_student,
)

__all__ = [
    "CachedTeacher",
    "EmbedDataSpec",
    "EmbedRecipe",
    "EmbedTrainConfig",
    "EmbedFitResult",
    "EmbeddingStudent",
    "EvalConfig",
    "EvalTask",
    "ObjectiveConfig",
    "SentenceTeacher",
    "SentenceTeacherConfig",
    "TextSource",
    "TransferSet",
    "collect_texts",
    "cosine_loss",
    "distill_embedding_student",
    "distill_objective",
    "evaluate_encoder",
    "fit_embedding_student",
    "info_nce",
    "linear_probe_accuracy",
    "load_embed_recipe",
    "load_embedding_student",
    "mse_loss",
    "neighbour_recall",
    "parse_embed_recipe",
    "run_embed_distill",
    "similarity_spearman",
]
