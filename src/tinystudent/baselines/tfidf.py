"""TF-IDF word 1-2-grams + logistic regression: the classic cheap text baseline."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from tinystudent.baselines.base import (
    Baseline,
    NotFittedError,
    check_fit_inputs,
    fit_logreg,
    full_proba,
    logreg_params,
    pickled_size,
)


class TfidfLogReg(Baseline):
    """Sparse word uni+bigram TF-IDF (sublinear tf) into a logistic regression.

    `c=None` picks the regularisation by cross-validation on the training texts.
    """

    name = "tfidf-lr"

    def __init__(
        self, ngram_max: int = 2, min_df: int = 1, c: float | None = None, seed: int = 0
    ) -> None:
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.c = c
        self.seed = seed
        self._vectorizer: TfidfVectorizer | None = None
        self._clf: LogisticRegression | None = None
        self._n_classes = 0

    def fit(self, texts: list[str], labels: list[int], n_classes: int) -> TfidfLogReg:
        check_fit_inputs(texts, labels, n_classes)
        vectorizer = TfidfVectorizer(
            ngram_range=(1, self.ngram_max), min_df=self.min_df, sublinear_tf=True
        )
        features = vectorizer.fit_transform(texts)
        # Only kept for introspection; dropping it keeps the pickle to what predicting needs.
        if hasattr(vectorizer, "stop_words_"):
            delattr(vectorizer, "stop_words_")
        self._clf = fit_logreg(features, labels, self.c, self.seed)
        self._vectorizer = vectorizer
        self._n_classes = n_classes
        return self

    def _fitted(self) -> tuple[TfidfVectorizer, LogisticRegression]:
        if self._vectorizer is None or self._clf is None:
            raise NotFittedError(f"{self.name}: call fit before predicting")
        return self._vectorizer, self._clf

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        vectorizer, clf = self._fitted()
        proba = clf.predict_proba(vectorizer.transform(texts))
        return full_proba(proba, clf.classes_, self._n_classes)

    def num_params(self) -> int:
        vectorizer, clf = self._fitted()
        return int(vectorizer.idf_.size) + logreg_params(clf)

    def size_bytes(self) -> int:
        vectorizer, clf = self._fitted()
        return pickled_size((vectorizer, clf))
