"""TF-IDF word n-grams + logistic regression as a teacher: where words decide, it rivals encoders.

On topic and spam data a linear model over word counts is as accurate as an encoder from a
few dozen labels (BBC News at k = 64: TF-IDF + LR 0.963, frozen mpnet + LR 0.960, a
fine-tuned MiniLM 0.960 on seed 0), costs seconds to fit where the fine-tuned encoder takes
tens of minutes on a CPU, and labels thousands of texts a second. It also errs differently
from an encoder, which makes it a useful member of several amalgamated teachers.

The model is stored without sklearn or pickle: the vocabulary as text (one term a line, in
column order), the idf vector and the head as safetensors. Predicting rebuilds the features by hand
(counts over the fixed vocabulary, sublinear tf, idf, L2 norm), the same numbers sklearn's
`TfidfVectorizer` gives. `temperature: auto` fits a softmax temperature on out-of-fold
k-shot logits, as the frozen teacher does: a logistic regression on few examples gives
soft probabilities.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from tinystudent.baselines.base import check_fit_inputs, fit_logreg
from tinystudent.errors import TinyStudentError
from tinystudent.io import read_json, save_safetensors, write_json, write_text
from tinystudent.teachers.frozen import (
    fit_temperature,
    linear_head,
    oof_logits,
    single_thread_blas,
    softmax,
)

#: Bump when the features, the head's fit or a prediction change for the same inputs.
CODE_VERSION = 1


class TfidfTeacherConfig(BaseModel):
    """Word n-grams up to `ngram_max`, sublinear tf; `c` None = CV on the k-shot set."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["tfidf"] = "tfidf"
    ngram_max: int = Field(2, ge=1, le=3, description="longest word n-gram")
    min_df: int = Field(1, ge=1, description="drop terms seen in fewer k-shot texts")
    lowercase: bool = True
    c: float | None = Field(None, gt=0, description="LR strength; None = CV on the k-shot set")
    temperature: float | Literal["auto"] = Field(1.0, description="softmax temperature or auto")

    @property
    def model(self) -> str:
        """A name for tables and member names (`tfidf:1-2`): there is no model to load."""
        return f"1-{self.ngram_max}"


class TfidfTeacher:
    """A fixed vocabulary and idf, a linear head (weight [C, V], bias [C]) and a temperature."""

    def __init__(self, label_names: list[str], cfg: TfidfTeacherConfig | None = None) -> None:
        self.label_names = list(label_names)
        self.cfg = cfg or TfidfTeacherConfig()
        self.vocabulary: list[str] = []
        self.idf = np.zeros(0, dtype=np.float32)
        self.weight = np.zeros((len(self.label_names), 0), dtype=np.float32)
        self.bias = np.zeros(len(self.label_names), dtype=np.float32)
        self.temperature = 1.0
        self.fit_info: dict[str, Any] = {}
        self._counter: Any = None
        self._fingerprint: str | None = None

    @classmethod
    def from_config(
        cls, label_names: list[str], cfg: TfidfTeacherConfig, cache_dir: str | Path | None = None
    ) -> TfidfTeacher:
        """Nothing to load and nothing worth caching: features cost microseconds a text."""
        return cls(label_names, cfg)

    # -- features --------------------------------------------------------------------------
    def _count_vectorizer(self, vocabulary: list[str] | None = None) -> Any:
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(
            ngram_range=(1, self.cfg.ngram_max),
            min_df=self.cfg.min_df if vocabulary is None else 1,
            lowercase=self.cfg.lowercase,
            vocabulary=vocabulary,
            dtype=np.float32,
        )

    def features(self, texts: list[str]) -> Any:
        """Sparse [n, V] TF-IDF rows: (1 + log tf) * idf, L2-normalised, as sklearn's."""
        from sklearn.preprocessing import normalize

        if self._counter is None:
            if not self.vocabulary:
                raise TinyStudentError("tfidf teacher: call fit before predicting")
            self._counter = self._count_vectorizer(self.vocabulary)
        x = self._counter.transform(texts).astype(np.float32)
        x.data = np.log(x.data) + 1.0
        x = x.multiply(self.idf[None, :]).tocsr()
        return normalize(x, norm="l2", copy=False)

    # -- training --------------------------------------------------------------------------
    def fit(
        self,
        texts: list[str],
        labels: list[int],
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
    ) -> dict[str, Any]:
        """Vocabulary and idf from the k-shot texts, then the head (and temperature)."""
        from sklearn.feature_extraction.text import TfidfTransformer

        n = len(self.label_names)
        check_fit_inputs(texts, labels, n)
        counter = self._count_vectorizer()
        counts = counter.fit_transform(texts)
        tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
        terms = counter.get_feature_names_out()
        self.vocabulary = [str(t) for t in terms]
        self.idf = np.asarray(tfidf.idf_, dtype=np.float32)
        self._counter = None
        x = self.features(texts)
        y = np.asarray(labels)
        with single_thread_blas():
            clf = fit_logreg(x, labels, self.cfg.c, seed)
            self.weight, self.bias = linear_head(clf, n)
            c = float(clf.C)
            if self.cfg.temperature == "auto":
                oof = oof_logits(x, y, n, c, seed)
                logits = self.logits(texts) if oof is None else oof
                self.temperature = fit_temperature(logits, y)
            else:
                self.temperature = float(self.cfg.temperature)
        self._fingerprint = None
        self.fit_info = {
            "C": c,
            "temperature": self.temperature,
            "n_train": len(texts),
            "vocabulary": len(self.vocabulary),
        }
        return {"fit": dict(self.fit_info)}

    # -- inference -------------------------------------------------------------------------
    def logits(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.features(texts) @ self.weight.T + self.bias, dtype=np.float64)

    def to(self, device: object) -> TfidfTeacher:
        """Nothing to move: a sparse matmul on the CPU (the one teacher protocol has `to`)."""
        return self

    def predict_proba(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        """Class probabilities (there is no cache; `use_cache` is for a uniform call)."""
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        return softmax(self.logits(texts) / self.temperature).astype(np.float32)

    @property
    def fingerprint(self) -> str:
        """Vocabulary, idf, head and temperature: any change gives new soft labels."""
        if self._fingerprint is None:
            h = hashlib.sha256(f"tfidf|{self.cfg.model_dump_json()}|{self.label_names}".encode())
            h.update("\n".join(self.vocabulary).encode())
            for a in (self.idf, self.weight, self.bias):
                h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
            h.update(repr(float(self.temperature)).encode())
            self._fingerprint = h.hexdigest()[:32]
        return self._fingerprint

    def num_params(self) -> int:
        return int(self.idf.size + self.weight.size + self.bias.size)

    def size_bytes(self) -> int:
        """4 bytes a weight plus the vocabulary's UTF-8 bytes (one line a term)."""
        terms = sum(len(t.encode()) + 1 for t in self.vocabulary)
        return 4 * self.num_params() + terms

    # -- persistence -----------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> None:
        """Vocabulary (one term a line), idf + head as safetensors, settings as JSON."""
        out = Path(out_dir)
        write_text(out / "vocabulary.txt", "\n".join(self.vocabulary) + "\n")
        save_safetensors(
            out / "tfidf.safetensors",
            {
                "idf": torch.from_numpy(self.idf),
                "weight": torch.from_numpy(self.weight),
                "bias": torch.from_numpy(self.bias),
            },
            {"format": "pt"},
        )
        write_json(
            out / "teacher.json",
            {
                "kind": "tfidf",
                "label_names": self.label_names,
                "config": self.cfg.model_dump(mode="json"),
                "temperature": self.temperature,
                "fingerprint": self.fingerprint,
                "params": self.num_params(),
                "fit": self.fit_info,
            },
        )

    @classmethod
    def load(cls, model_dir: str | Path, cache_dir: str | Path | None = None) -> TfidfTeacher:
        from safetensors.numpy import load_file

        d = Path(model_dir)
        meta = read_json(d / "teacher.json")
        if meta.get("kind") != "tfidf":
            raise TinyStudentError(f"{d}: not a tfidf teacher (kind {meta.get('kind')!r})")
        teacher = cls(meta["label_names"], TfidfTeacherConfig(**meta["config"]))
        terms = (d / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
        tensors = load_file(d / "tfidf.safetensors")
        teacher.vocabulary = terms
        teacher.idf, teacher.weight, teacher.bias = (
            tensors["idf"],
            tensors["weight"],
            tensors["bias"],
        )
        if teacher.idf.shape[0] != len(terms) or teacher.weight.shape[1] != len(terms):
            raise TinyStudentError(f"{d}: vocabulary.txt and tfidf.safetensors disagree")
        teacher.temperature = float(meta["temperature"])
        teacher.fit_info = dict(meta.get("fit", {}))
        if teacher.fingerprint != meta["fingerprint"]:
            raise TinyStudentError(f"{d}: the saved tfidf teacher does not match its record")
        return teacher
