"""The multi-label teacher: the frozen encoder with one logistic regression per label.

Labels of a multi-label text are not exclusive, so each label gets its own binary head and an
independent sigmoid (the probabilities of a row do not sum to 1). A probe fitted on k texts
per label is not calibrated at 0.5, so each label also gets a decision threshold, chosen by
cross-validation on the k-shot set alone: out-of-fold probabilities, the threshold with the
best F1 for that label. The test split is never read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinystudent.baselines.base import fit_logreg
from tinystudent.errors import DataError, TinyStudentError
from tinystudent.evaluate.multilabel import best_threshold, decide
from tinystudent.teachers.frozen import (
    FrozenEncoderTeacher,
    SentenceEncoder,
    single_thread_blas,
)

#: Logit of a label the k-shot set never shows absent (or never present): near-certain.
CONSTANT_LOGIT = 9.0


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))))


def _oof_probs(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> np.ndarray | None:
    """Out-of-fold probabilities of one binary label at strength `c` (None: too few)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    folds = int(min(5, np.bincount(y, minlength=2).min()))
    if folds < 2:
        return None
    out = np.zeros(len(y))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x[tr], y[tr])
        out[te] = clf.predict_proba(x[te])[:, 1]
    return out


class MultiLabelFrozenTeacher(FrozenEncoderTeacher):
    """`SentenceEncoder` + one binary head per label (weight [L, D], bias [L]) + thresholds."""

    def __init__(self, encoder: SentenceEncoder, label_names: list[str], cfg: Any = None) -> None:
        super().__init__(encoder, label_names, cfg)
        self.thresholds = [0.5] * len(self.label_names)

    def fit(  # type: ignore[override]
        self, texts: list[str], labels: list[list[int]] | np.ndarray, seed: int = 0
    ) -> dict[str, Any]:
        """Fit every label's head and threshold on the k-shot set; returns what was chosen."""
        y_all = np.asarray(labels, dtype=int)
        n = len(self.label_names)
        if y_all.ndim != 2 or y_all.shape != (len(texts), n):
            raise DataError(
                f"multi-label targets of shape {y_all.shape} for {len(texts)} texts and {n} labels"
            )
        if not texts:
            raise DataError("no training texts")
        x = self.encoder.embed(texts, desc="embedding k-shot")
        weight = np.zeros((n, x.shape[1]), dtype=np.float32)
        bias = np.zeros(n, dtype=np.float32)
        cs: list[float | None] = []
        thresholds: list[float] = []
        with single_thread_blas():
            for j in range(n):
                y = y_all[:, j]
                if y.min() == y.max():  # every k-shot text has it, or none: no boundary to fit
                    bias[j] = CONSTANT_LOGIT if y[0] else -CONSTANT_LOGIT
                    cs.append(None)
                    thresholds.append(0.5)
                    continue
                clf = fit_logreg(x, list(y), self.cfg.c, seed)
                weight[j], bias[j] = clf.coef_[0], clf.intercept_[0]
                cs.append(float(clf.C))
                oof = _oof_probs(x, y, float(clf.C), seed)
                thresholds.append(0.5 if oof is None else best_threshold(y, oof))
        self.weight, self.bias, self.thresholds = weight, bias, thresholds
        self.temperature = 1.0
        self._fingerprint = None
        self.fit_info = {"C": cs, "thresholds": thresholds, "n_train": len(texts)}
        return dict(self.fit_info)

    def predict_proba(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        """Per-label probabilities (independent sigmoids; rows need not sum to 1)."""
        x = self.encoder.embed(texts, use_cache=use_cache, desc="embedding")
        return sigmoid(self._logits(x)).astype(np.float32)

    def predict_labels(self, probs: np.ndarray) -> np.ndarray:
        """Multi-hot decisions at the per-label thresholds."""
        return decide(probs, self.thresholds)

    def predict_proba_samples(self, texts: list[str], n: int, seed: int = 0) -> np.ndarray:
        raise TinyStudentError("Monte-Carlo samples (amalgamation) are single-label only")

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = "ml" + super().fingerprint[2:]
        return self._fingerprint

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "multi_label": True, "thresholds": self.thresholds}

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        encoder: SentenceEncoder | None = None,
        cache_dir: str | Path | None = None,
    ) -> MultiLabelFrozenTeacher:
        from tinystudent.io import read_json

        teacher = super().load(model_dir, encoder, cache_dir)
        assert isinstance(teacher, MultiLabelFrozenTeacher)
        meta = read_json(Path(model_dir) / "teacher.json")
        if not meta.get("multi_label"):
            raise TinyStudentError(f"{model_dir}: a single-label teacher, not a multi-label one")
        teacher.thresholds = [float(t) for t in meta["thresholds"]]
        return teacher
