"""A static-embedding model distilled from the teacher (model2vec) + logistic regression.

model2vec runs the teacher once over every token of its vocabulary and keeps one (PCA-reduced,
SIF-weighted) vector per token, so a sentence costs a few table lookups. It is the fairest
"cheap student without our distillation" baseline: same teacher, no labels used to build it.
Distilling MiniLM-L6 takes ~40 s on 2 cores, so the static model is cached in `cache_dir`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from tinystudent.assets import resolve_model
from tinystudent.baselines.base import (
    Baseline,
    NotFittedError,
    check_fit_inputs,
    fit_logreg,
    full_proba,
    logreg_params,
    missing_extra,
    pickled_size,
)

DEFAULT_TOKEN_REMOVE = r"\[unused\d+\]"  # model2vec's default: BERT's placeholder tokens


def _import_model2vec() -> tuple[Any, Any]:
    """(StaticModel, distill); distill also needs skeletoken, torch and transformers."""
    try:
        from model2vec import StaticModel
        from model2vec.distill import distill
    except ImportError:
        raise missing_extra("model2vec (with skeletoken)") from None
    return StaticModel, distill


def static_model_key(
    teacher: str, pca_dims: int | None, vocabulary: list[str] | None, token_remove: str | None
) -> str:
    """Cache folder name: readable teacher slug + hash of everything that changes the vectors."""
    resolved = resolve_model(teacher)
    recipe = repr((resolved, pca_dims, sorted(vocabulary or []), token_remove))
    digest = hashlib.sha1(recipe.encode("utf-8")).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", teacher).strip("-")[-40:] or "model"
    return f"{slug}-pca{pca_dims}-{digest}"


def distill_static_model(
    teacher: str = "minilm-l6",
    cache_dir: str | Path | None = None,
    pca_dims: int | None = 256,
    vocabulary: list[str] | None = None,
    token_remove_pattern: str | None = DEFAULT_TOKEN_REMOVE,
) -> Any:
    """Distill (or load from `cache_dir`) a model2vec StaticModel from a local teacher folder.

    The teacher is resolved through the offline catalogue, so nothing is downloaded. The cached
    folder is written next to its final name and renamed, so a killed run leaves no half model.
    """
    static_model_cls, distill = _import_model2vec()
    if cache_dir is not None:
        key = static_model_key(teacher, pca_dims, vocabulary, token_remove_pattern)
        target = Path(cache_dir).expanduser() / key
        if (target / "model.safetensors").is_file():
            return static_model_cls.from_pretrained(str(target))
    model = distill(
        model_name=resolve_model(teacher),
        vocabulary=vocabulary,
        pca_dims=pca_dims,
        token_remove_pattern=token_remove_pattern,
    )
    if cache_dir is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
        try:
            model.save_pretrained(str(tmp))
            tmp.rename(target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # not a lost race: a real error
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return model


class Model2VecLogReg(Baseline):
    """Mean of static token vectors (model2vec) into a logistic regression.

    Pass `model_dir` to use an already distilled model2vec folder; otherwise the static model
    is distilled from `teacher` (catalogue name or local path) once per instance, and once per
    machine when `cache_dir` is set. `c=None` picks the regularisation by cross-validation.
    """

    name = "model2vec-lr"

    def __init__(
        self,
        teacher: str = "minilm-l6",
        model_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        pca_dims: int | None = 256,
        vocabulary: list[str] | None = None,
        token_remove_pattern: str | None = DEFAULT_TOKEN_REMOVE,
        c: float | None = None,
        seed: int = 0,
    ) -> None:
        self.teacher = teacher
        self.model_dir = model_dir
        self.cache_dir = cache_dir
        self.pca_dims = pca_dims
        self.vocabulary = vocabulary
        self.token_remove_pattern = token_remove_pattern
        self.c = c
        self.seed = seed
        self._static: Any = None
        self._clf: LogisticRegression | None = None
        self._n_classes = 0

    def static_model(self) -> Any:
        """The model2vec StaticModel, built or loaded on first use and then kept."""
        if self._static is None:
            if self.model_dir is not None:
                static_model_cls, _ = _import_model2vec()
                self._static = static_model_cls.from_pretrained(str(self.model_dir))
            else:
                self._static = distill_static_model(
                    self.teacher,
                    self.cache_dir,
                    self.pca_dims,
                    self.vocabulary,
                    self.token_remove_pattern,
                )
        return self._static

    def embed(self, texts: list[str]) -> np.ndarray:
        """Sentence vectors; in-process (model2vec forks workers past 10k texts otherwise)."""
        vectors = self.static_model().encode(list(texts), use_multiprocessing=False)
        return np.asarray(vectors, dtype=np.float32)

    def fit(self, texts: list[str], labels: list[int], n_classes: int) -> Model2VecLogReg:
        check_fit_inputs(texts, labels, n_classes)
        self._clf = fit_logreg(self.embed(texts), labels, self.c, self.seed)
        self._n_classes = n_classes
        return self

    def _fitted(self) -> LogisticRegression:
        if self._clf is None:
            raise NotFittedError(f"{self.name}: call fit before predicting")
        return self._clf

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        clf = self._fitted()
        return full_proba(clf.predict_proba(self.embed(texts)), clf.classes_, self._n_classes)

    def num_params(self) -> int:
        clf = self._fitted()
        static = self.static_model()
        weights = getattr(static, "weights", None)
        extra = 0 if weights is None else int(np.asarray(weights).size)
        return int(np.asarray(static.embedding).size) + extra + logreg_params(clf)

    def size_bytes(self) -> int:
        """Token vectors as stored (float16 by default) + tokenizer JSON + the pickled head."""
        clf = self._fitted()
        static = self.static_model()
        weights = getattr(static, "weights", None)
        extra = 0 if weights is None else int(np.asarray(weights).nbytes)
        tokenizer = len(static.tokenizer.to_str().encode("utf-8"))
        return int(np.asarray(static.embedding).nbytes) + extra + tokenizer + pickled_size(clf)
