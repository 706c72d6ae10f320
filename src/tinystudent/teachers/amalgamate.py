"""Several teachers amalgamated into one soft label per text (knowledge amalgamation).

Why: users often have several models that each know part of a task, or an encoder and an LLM
that err on different texts. Three ways to combine their probabilities:
- `average`: every teacher counts the same;
- `accuracy`: a teacher's weight is its accuracy on the gold examples (for teachers fitted on
  them it is a training accuracy, so optimistic: it ranks teachers, it does not measure them);
- `uncertainty` (MUKA-style): per text, each teacher runs `mc_samples` stochastic passes with
  dropout on; its soft label is the mean of the passes, and its weight is its certainty,
  `1 - H(mean) / log |its labels|`, where H is the predictive entropy (the passes' spread
  flattens the mean, so disagreement between passes lowers the certainty too). A teacher
  without dropout (SmolLM2's config has none; a remote LLM) gives equal passes and is judged
  by the entropy of its single prediction, i.e. its own confidence.

Label sets. Every teacher's probabilities are mapped into the union of labels, with zero mass on
labels it does not know. The combination is per label, over the teachers that know it:
`q(y) = sum_t w_t p_t(y) / sum_{t knows y} w_t`, then q is renormalised. So a label only one
teacher knows is not diluted by the teachers that cannot name it. The limitation: a teacher's
probabilities are conditional on its own label set, so a teacher that knows fewer labels puts
more mass on each; with `uncertainty` its weight falls when it is unsure, which is when the true
label is most likely outside its set.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tinystudent.code_version import versioned
from tinystudent.errors import TinyStudentError
from tinystudent.teachers.base import Teacher

Method = Literal["average", "accuracy", "uncertainty"]
METHODS: tuple[str, ...] = ("average", "accuracy", "uncertainty")
#: No teacher's weight drops to exactly 0: a row where every teacher is fully unsure stays valid.
MIN_WEIGHT = 1e-3
#: Bump when combining members gives other probabilities for the same members: the
#: amalgamated labels and the student are redone (see `tinystudent.code_version`).
CODE_VERSION = 1


class AmalgamationSpec(BaseModel):
    """How several teachers' probabilities become one soft label (recipe `amalgamation`)."""

    model_config = ConfigDict(extra="forbid")

    method: Method = "average"
    mc_samples: int = Field(8, ge=1, le=256, description="dropout passes (uncertainty)")
    seed: int = Field(0, ge=0, description="seed of the dropout passes")


@runtime_checkable
class SamplingTeacher(Teacher, Protocol):
    """A teacher that can draw stochastic predictions (Monte-Carlo dropout)."""

    def predict_proba_samples(self, texts: list[str], n: int, seed: int = 0) -> np.ndarray: ...


def label_union(label_sets: Sequence[Sequence[str]]) -> list[str]:
    """Labels in first-seen order across teachers."""
    return list(dict.fromkeys(name for labels in label_sets for name in labels))


def to_union(probs: np.ndarray, labels: Sequence[str], union: Sequence[str]) -> np.ndarray:
    """[..., |labels|] -> [..., |union|], zeros where the teacher has no such label."""
    missing = sorted(set(labels) - set(union))
    if missing:
        raise TinyStudentError(f"teacher labels {missing} are not among {list(union)}")
    out = np.zeros((*probs.shape[:-1], len(union)), dtype=np.float64)
    out[..., [list(union).index(name) for name in labels]] = probs
    return out


def known_mask(label_sets: Sequence[Sequence[str]], union: Sequence[str]) -> np.ndarray:
    """[T, C] True where teacher t knows label c."""
    return np.array([[name in set(labels) for name in union] for labels in label_sets])


def certainty(mean_probs: np.ndarray, n_labels: int) -> np.ndarray:
    """1 - normalised predictive entropy per row, floored at MIN_WEIGHT."""
    if n_labels <= 1:
        return np.ones(len(mean_probs))
    p = np.clip(mean_probs, 1e-12, 1.0)
    h = -(p * np.log(p)).sum(axis=-1)
    return np.asarray(np.clip(1.0 - h / math.log(n_labels), MIN_WEIGHT, 1.0))


def combine(probs: Sequence[np.ndarray], known: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-label weighted mean over the teachers that know each label, renormalised.

    probs: T arrays [N, C] in union space; known: [T, C]; weights: [T] or [T, N].
    """
    p = np.stack([np.asarray(x, dtype=np.float64) for x in probs])  # [T, N, C]
    w = np.asarray(weights, dtype=np.float64)
    w = np.broadcast_to(w[:, None] if w.ndim == 1 else w, p.shape[:2])[..., None]  # [T, N, 1]
    k = known[:, None, :].astype(np.float64)  # [T, 1, C]
    num = (w * k * p).sum(0)
    den = (w * k).sum(0)
    q = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    total = q.sum(1, keepdims=True)
    uniform = np.full_like(q, 1.0 / q.shape[1])
    return np.asarray(np.where(total > 0, q / np.where(total > 0, total, 1.0), uniform))


def agreement_matrix(preds: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Share of texts on which two systems' argmax labels agree, for every pair."""
    return {a: {b: float((pa == pb).mean()) for b, pb in preds.items()} for a, pa in preds.items()}


def agreement_markdown(matrix: dict[str, dict[str, float]]) -> str:
    names = list(matrix)
    lines = [
        "Teacher-to-teacher agreement on the test split (share of equal predicted labels):",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for a in names:
        lines.append(f"| {a} | " + " | ".join(f"{matrix[a][b]:.3f}" for b in names) + " |")
    return "\n".join(lines) + "\n"


class AmalgamatedTeacher:
    """Several teachers as one `Teacher` over the union of their labels."""

    def __init__(
        self,
        teachers: Sequence[Teacher],
        spec: AmalgamationSpec | None = None,
        names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        """`weights`: per-teacher weights fitted before (by `fit` in another process, see
        `teachers.portable`); by default every teacher weighs 1 until `fit`."""
        if not teachers:
            raise TinyStudentError("amalgamation needs at least one teacher")
        self.teachers = list(teachers)
        self.spec = spec or AmalgamationSpec()
        self.names = list(names) if names else [f"teacher{i}" for i in range(len(teachers))]
        sets = [t.label_names for t in self.teachers]
        union = label_union(sets)
        if label_names is not None:
            extra = sorted(set(union) - set(label_names))
            if extra:
                raise TinyStudentError(f"teachers know labels {extra} not in {list(label_names)}")
            orphans = [n for n in label_names if n not in union]
            if orphans:
                raise TinyStudentError(
                    f"no teacher knows the labels {orphans}: give one of them those classes"
                )
            union = list(label_names)
        self.label_names = union
        self.known = known_mask(sets, union)
        self.weights = np.ones(len(self.teachers))
        if weights is not None:
            if len(weights) != len(self.teachers):
                raise TinyStudentError(f"{len(weights)} weights for {len(self.teachers)} teachers")
            self.weights = np.asarray(weights, dtype=np.float64)
        self.fit_info: dict[str, Any] = {}

    def fit(self, texts: list[str], labels: list[int]) -> dict[str, Any]:
        """Accuracy weights from the gold examples (union label indices); no-op otherwise."""
        if self.spec.method != "accuracy":
            self.fit_info = {"method": self.spec.method}
            return dict(self.fit_info)
        y = np.asarray(labels)
        accs = []
        for t, probs in zip(self.teachers, self.member_proba(texts)):
            # judged only on the gold examples of labels it knows (the rest it cannot name)
            mine = np.isin(y, [self.label_names.index(n) for n in t.label_names])
            acc = float((probs[mine].argmax(1) == y[mine]).mean()) if mine.any() else 0.0
            accs.append(acc)
        self.weights = np.maximum(np.asarray(accs), MIN_WEIGHT)
        self.fit_info = {"method": "accuracy", "gold_accuracy": dict(zip(self.names, accs))}
        return dict(self.fit_info)

    def member_proba(self, texts: list[str]) -> list[np.ndarray]:
        """Each teacher's probabilities in union label space."""
        return [
            to_union(t.predict_proba(texts), t.label_names, self.label_names) for t in self.teachers
        ]

    def _samples(self, teacher: Teacher, texts: list[str]) -> np.ndarray:
        n, seed = self.spec.mc_samples, self.spec.seed
        if isinstance(teacher, SamplingTeacher):
            return np.asarray(teacher.predict_proba_samples(texts, n, seed))
        return np.asarray(teacher.predict_proba(texts))[None]  # no sampling: its own confidence

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        if self.spec.method != "uncertainty":
            return combine(self.member_proba(texts), self.known, self.weights).astype(np.float32)
        means, weights = [], []
        for t in self.teachers:
            mean = self._samples(t, texts).mean(axis=0)
            weights.append(certainty(mean, len(t.label_names)))
            means.append(to_union(mean, t.label_names, self.label_names))
        return combine(means, self.known, np.stack(weights)).astype(np.float32)

    @property
    def fingerprint(self) -> str:
        """Method, sampling settings, weights and every member's fingerprint and label set."""
        head = f"amalgam|{self.spec.model_dump_json()}|{self.label_names}"
        h = hashlib.sha256(versioned(head, CODE_VERSION).encode())
        for t in self.teachers:
            h.update(f"{t.fingerprint}|{t.label_names}".encode())
        h.update(np.ascontiguousarray(self.weights, dtype="<f8").tobytes())
        return h.hexdigest()[:32]

    def num_params(self) -> int:
        return sum(int(getattr(t, "num_params", lambda: 0)()) for t in self.teachers)
