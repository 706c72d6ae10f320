"""fastText supervised (Joulin et al., 2017): bag of word and bigram embeddings, linear softmax.

Uses the `fasttext-wheel` package (import name `fasttext`). Its Python `predict` calls
`np.array(..., copy=False)`, which numpy 2 rejects, so we call the C++ binding's
`multilinePredict` directly and build the probability matrix ourselves.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinystudent.baselines.base import (
    Baseline,
    NotFittedError,
    check_fit_inputs,
    missing_extra,
    normalise_rows,
)

_PUNCT = re.compile(r"([^\w\s'])")
_LABEL = "__label__"


def _import_fasttext() -> Any:
    try:
        import fasttext
    except ImportError:
        raise missing_extra("fasttext-wheel") from None
    return fasttext


def normalise_text(text: str) -> str:
    """fastText splits on whitespace only: lowercase and split off punctuation, one line."""
    return " ".join(_PUNCT.sub(r" \1 ", text.lower()).split())


class FastTextClassifier(Baseline):
    """fastText supervised with word n-grams; seeded, `threads=1` by default for determinism.

    `bucket` rows are allocated whether used or not, so it is kept small: a few hundred labeled
    texts hold a few thousand bigrams at most, and every bucket costs `dim` floats on disk.
    """

    name = "fasttext"

    def __init__(
        self,
        dim: int = 50,
        epoch: int = 50,
        lr: float = 0.5,
        word_ngrams: int = 2,
        bucket: int = 1 << 16,
        min_count: int = 1,
        threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.epoch = epoch
        self.lr = lr
        self.word_ngrams = word_ngrams
        self.bucket = bucket
        self.min_count = min_count
        self.threads = threads
        self.seed = seed
        self._model: Any = None
        self._n_classes = 0

    def fit(self, texts: list[str], labels: list[int], n_classes: int) -> FastTextClassifier:
        check_fit_inputs(texts, labels, n_classes)
        fasttext = _import_fasttext()
        with tempfile.TemporaryDirectory(prefix="tinystudent-fasttext-") as tmp:
            train_file = Path(tmp) / "train.txt"
            with train_file.open("w", encoding="utf-8") as f:
                for text, y in zip(texts, labels, strict=True):
                    f.write(f"{_LABEL}{y} {normalise_text(text)}\n")
            self._model = fasttext.train_supervised(
                input=str(train_file),
                dim=self.dim,
                epoch=self.epoch,
                lr=self.lr,
                wordNgrams=self.word_ngrams,
                bucket=self.bucket if self.word_ngrams > 1 else 0,
                minCount=self.min_count,
                loss="softmax",
                thread=self.threads,
                seed=self.seed,
                verbose=0,
            )
        self._n_classes = n_classes
        return self

    def _fitted(self) -> Any:
        if self._model is None:
            raise NotFittedError(f"{self.name}: call fit before predicting")
        return self._model

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        model = self._fitted()
        out = np.zeros((len(texts), self._n_classes), dtype=np.float64)
        # One binding call per text: the wrapper's `predict` breaks on numpy 2, and the
        # binding's `multilinePredict` in 0.9.2 returns the top probability for every label.
        for row, text in enumerate(texts):
            for p, name in model.f.predict(normalise_text(text) + "\n", -1, 0.0, "strict"):
                out[row, int(name[len(_LABEL) :])] = p
        # fastText reports exp(log(p + 1e-5)): renormalise so rows sum to exactly 1.
        return normalise_rows(out)

    def num_params(self) -> int:
        model = self._fitted()
        args = model.f.getArgs()
        rows = len(model.f.getVocab("strict")[0]) + args.bucket
        return int(rows * args.dim + len(model.f.getLabels("strict")[0]) * args.dim)

    def size_bytes(self) -> int:
        model = self._fitted()
        with tempfile.TemporaryDirectory(prefix="tinystudent-fasttext-") as tmp:
            path = Path(tmp) / "model.bin"
            model.save_model(str(path))
            return path.stat().st_size
