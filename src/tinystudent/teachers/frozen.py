"""A frozen sentence encoder with a logistic-regression head: a strong teacher that is cheap to fit.

Fine-tuning a 110M-parameter encoder for every seed and k costs hours on a CPU, and with a
few dozen labels it barely beats a linear probe on good sentence embeddings (bench results:
frozen all-mpnet-base-v2 + LR reaches ~0.81 on Rotten Tomatoes at k = 64, fine-tuned MiniLM
~0.71). Freezing the encoder also makes its work reusable: embeddings go through a
content-keyed cache (`label/embeddings.py`), so the pool and test texts are encoded once per
encoder and every head (seed, k) after that costs milliseconds.

Embeddings are mean-pooled over real tokens and L2-normalised, as sentence-transformers does
for the all-* checkpoints. The head is sklearn's logistic regression (C by cross-validation on
the k-shot set), stored as plain safetensors weights, so predicting needs no sklearn and no
pickle; an optional temperature is fitted on out-of-fold k-shot predictions because a linear
probe on few examples gives soft probabilities (typically 0.35/0.65).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from tinystudent.assets import resolve_model
from tinystudent.baselines.base import check_fit_inputs, fit_logreg
from tinystudent.checkpoint import hash_weights
from tinystudent.code_version import versioned
from tinystudent.devices import module_device, resolve_device
from tinystudent.errors import TinyStudentError
from tinystudent.io import read_json, save_safetensors, write_json
from tinystudent.label.embeddings import EmbeddingCache, embed_texts
from tinystudent.teachers.encoder import length_sorted_batches
from tinystudent.teachers.layers import LayerSource

#: Logit given to a class the head never saw in training: probability ~0, still finite.
ABSENT_LOGIT = -1e4
TEMPERATURE_RANGE = (0.05, 20.0)
#: Dropout on the frozen features for MC samples (MiniLM's own hidden dropout rate).
MC_FEATURE_DROPOUT = 0.1
#: Bump when an embedding, the head's fit or a prediction changes for the same inputs: the
#: embedding cache, the teacher stage, its labels and the student are redone.
CODE_VERSION = 1


class FrozenTeacherConfig(BaseModel):
    """A frozen encoder + linear head; `temperature: auto` calibrates on the k-shot set."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["frozen"] = "frozen"
    model: str = "minilm-l6"
    max_length: int = Field(128, ge=8, le=512, description="tokens kept per text")
    batch_size: int = Field(64, ge=1, description="texts per encoder call")
    normalize: bool = True
    c: float | None = Field(None, gt=0, description="LR strength; None = CV on the k-shot set")
    temperature: float | Literal["auto"] = Field(1.0, description="softmax temperature or auto")
    embed_cache_dir: str | None = Field(None, description="embedding cache (default: run cache)")
    trust_remote_code: bool = False


class SentenceEncoder:
    """A transformers encoder, mean-pooled and L2-normalised, with an optional embedding cache.

    `encode` always runs the model (what a user pays per text, tokenisation included);
    `embed` goes through the cache when one is set.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        max_length: int = 128,
        normalize: bool = True,
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
        weights_path: Path | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.normalize = normalize
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.weights_path = weights_path
        self._fingerprint: str | None = None
        self._cache: EmbeddingCache | None = None

    @classmethod
    def from_pretrained(
        cls,
        name: str,
        max_length: int = 128,
        normalize: bool = True,
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
        trust_remote_code: bool = False,
    ) -> SentenceEncoder:
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model(name)
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(
            path, trust_remote_code=trust_remote_code, use_safetensors=True
        )
        weights = Path(path) / "model.safetensors"
        return cls(
            model,
            tok,
            max_length,
            normalize,
            batch_size,
            cache_dir,
            weights if weights.is_file() else None,
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)  # type: ignore[union-attr,arg-type]

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    def to(self, device: str | torch.device) -> SentenceEncoder:
        """Run the encoder on `device` (cpu, cuda, auto); embeddings still come back as CPU
        numpy arrays, the form the cache keeps."""
        self.model.to(resolve_device(device))
        return self

    @property
    def fingerprint(self) -> str:
        """Hash of the weights, the tokenizer and every setting that changes an embedding."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"mean|norm={self.normalize}|len={self.max_length}".encode())
            h.update(versioned("", CODE_VERSION).encode())  # nothing at version 1
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            h.update(
                backend.to_str().encode() if backend is not None else repr(self.tokenizer).encode()
            )
            hash_weights(h, list(self.model.state_dict().items()))
            self._fingerprint = h.hexdigest()[:32]
        return self._fingerprint

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """[len(texts), dim] float32 embeddings in input order, length-sorted batches."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx in length_sorted_batches(texts, self.batch_size):
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
            h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.float().cpu().numpy()
        return out

    def open_cache(self) -> EmbeddingCache:
        """The embedding cache, loaded once and kept: callers embed a shard at a time."""
        if self.cache_dir is None:
            raise TinyStudentError("this encoder has no embedding cache directory")
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_dir, self.fingerprint, self.dim)
        return self._cache

    def embed(
        self, texts: list[str], use_cache: bool = True, desc: str = "embedding"
    ) -> np.ndarray:
        """Embeddings, through the cache when one is set (and `use_cache`)."""
        if not use_cache or self.cache_dir is None:
            return self.encode(texts)
        vectors, _ = embed_texts(self, texts, self.open_cache(), desc=desc)
        return vectors

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def size_bytes(self) -> int:
        """Weights as shipped: the safetensors file when loaded from one, else 4 bytes/param."""
        if self.weights_path is not None and self.weights_path.is_file():
            return self.weights_path.stat().st_size
        return 4 * self.num_params()


def single_thread_blas() -> Any:
    """A context with one BLAS thread: the CV grid fits hundreds of tiny logistic regressions,
    and on a busy machine threaded BLAS makes each one ~8x slower (thread hand-off dominates)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def linear_head(clf: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted sklearn logistic regression as (weight [C, D], bias [C]) whose softmax equals its
    `predict_proba`; a class it never saw gets `ABSENT_LOGIT` (probability ~0)."""
    classes = np.asarray(clf.classes_, dtype=int)
    coef = np.asarray(clf.coef_, dtype=np.float32)
    weight = np.zeros((n_classes, coef.shape[1]), dtype=np.float32)
    bias = np.full(n_classes, ABSENT_LOGIT, dtype=np.float32)
    if len(classes) == 2:  # sklearn keeps one row: logit(class1) - logit(class0)
        weight[classes[1]] = coef[0]
        bias[classes[0]] = 0.0
        bias[classes[1]] = clf.intercept_[0]
    else:
        weight[classes] = coef
        bias[classes] = clf.intercept_
    return weight, bias


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the log-loss of softmax(logits / T), searched on log T in a fixed range."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        z = logits / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[rows, labels] - np.log(np.exp(z).sum(axis=1))).mean())

    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded")
    return float(math.exp(res.x))


def oof_logits(x: Any, y: np.ndarray, n_classes: int, c: float, seed: int) -> np.ndarray | None:
    """Out-of-fold log-probabilities of a logistic regression at strength `c` (calibrating on
    training logits would be biased); None when a class has fewer than two examples."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(5, counts[counts > 0].min()))
    if folds < 2:
        return None
    out = np.zeros((len(y), n_classes), dtype=np.float64)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x[tr], y[tr])
        proba = np.full((len(te), n_classes), 1e-12)
        proba[:, clf.classes_] = np.clip(clf.predict_proba(x[te]), 1e-12, None)
        out[te] = np.log(proba)
    return out


class FrozenEncoderTeacher:
    """`SentenceEncoder` + linear head (weight [C, D], bias [C]) + temperature."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        label_names: list[str],
        cfg: FrozenTeacherConfig | None = None,
    ) -> None:
        self.encoder = encoder
        self.label_names = list(label_names)
        self.cfg = cfg or FrozenTeacherConfig()
        n = len(self.label_names)
        self.weight = np.zeros((n, encoder.dim), dtype=np.float32)
        self.bias = np.zeros(n, dtype=np.float32)
        self.temperature = 1.0
        self.fit_info: dict[str, Any] = {}
        self._fingerprint: str | None = None

    @classmethod
    def from_config(
        cls, label_names: list[str], cfg: FrozenTeacherConfig, cache_dir: str | Path | None = None
    ) -> FrozenEncoderTeacher:
        """Load the encoder named by `cfg`; `cfg.embed_cache_dir` wins over `cache_dir`."""
        encoder = SentenceEncoder.from_pretrained(
            cfg.model,
            cfg.max_length,
            cfg.normalize,
            cfg.batch_size,
            cfg.embed_cache_dir or cache_dir,
            cfg.trust_remote_code,
        )
        return cls(encoder, label_names, cfg)

    def to(self, device: str | torch.device) -> FrozenEncoderTeacher:
        """Embed on `device`; the head is a numpy matmul on the CPU either way."""
        self.encoder.to(device)
        return self

    # -- training --------------------------------------------------------------------------
    def fit(self, texts: list[str], labels: list[int], seed: int = 0) -> dict[str, Any]:
        """Fit the head (and temperature) on the k-shot set; returns what was chosen."""
        n = len(self.label_names)
        check_fit_inputs(texts, labels, n)
        x = self.encoder.embed(texts, desc="embedding k-shot")
        y = np.asarray(labels)
        with single_thread_blas():
            clf = fit_logreg(x, labels, self.cfg.c, seed)
        self.weight, self.bias = linear_head(clf, n)
        self.temperature = 1.0
        c = float(clf.C)
        if self.cfg.temperature == "auto":
            with single_thread_blas():
                oof = oof_logits(x, y, n, c, seed)
                logits = self._logits(x).astype(np.float64) if oof is None else oof
                self.temperature = fit_temperature(logits, y)
        else:
            self.temperature = float(self.cfg.temperature)
        self._fingerprint = None
        self.fit_info = {"C": c, "temperature": self.temperature, "n_train": len(texts)}
        return dict(self.fit_info)

    # -- inference -------------------------------------------------------------------------
    def _logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.weight.T + self.bias)

    def predict_proba(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        """Class probabilities; `use_cache=False` runs the encoder (for honest timings)."""
        x = self.encoder.embed(texts, use_cache=use_cache, desc="embedding")
        return softmax(self._logits(x) / self.temperature).astype(np.float32)

    def predict_proba_samples(self, texts: list[str], n: int, seed: int = 0) -> np.ndarray:
        """[n, len(texts), C] Monte-Carlo dropout on the head's input features (rate
        `MC_FEATURE_DROPOUT`, inverted scaling). Dropout inside the encoder would cost n
        uncached encodings of every text; on the cached frozen features it costs a matmul, and
        a head that leans on few features shows it as spread across passes."""
        x = self.encoder.embed(texts, desc="embedding")
        keep = 1.0 - MC_FEATURE_DROPOUT
        rng = np.random.default_rng(seed)
        out = np.zeros((n, len(texts), len(self.label_names)), dtype=np.float32)
        for i in range(n):
            mask = (rng.random(x.shape) < keep).astype(np.float32) / keep
            out[i] = softmax(self._logits(x * mask) / self.temperature)
        return out

    def embed(self, texts: list[str], cache_dir: str | Path | None = None) -> np.ndarray:
        """Sentence embeddings (what the head reads), through the encoder's own cache."""
        return self.encoder.embed(texts, desc="teacher embeddings")

    def layer_source(self, attentions: bool = False) -> LayerSource:
        return LayerSource(self.encoder.model, self.encoder.tokenizer, attentions)

    @property
    def fingerprint(self) -> str:
        """Encoder fingerprint + hash of the head: a new head never reuses another's labels."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"frozen|{self.encoder.fingerprint}|{self.label_names}".encode())
            h.update(np.ascontiguousarray(self.weight, dtype="<f4").tobytes())
            h.update(np.ascontiguousarray(self.bias, dtype="<f4").tobytes())
            h.update(repr(float(self.temperature)).encode())
            self._fingerprint = h.hexdigest()[:32]
        return self._fingerprint

    def num_params(self) -> int:
        return self.encoder.num_params() + int(self.weight.size + self.bias.size)

    def size_bytes(self) -> int:
        return self.encoder.size_bytes() + 4 * int(self.weight.size + self.bias.size)

    # -- persistence -----------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> None:
        """The head as safetensors + JSON; the encoder is referenced by name and fingerprint."""
        out = Path(out_dir)
        save_safetensors(
            out / "head.safetensors",
            {"weight": torch.from_numpy(self.weight), "bias": torch.from_numpy(self.bias)},
            {"format": "pt", "temperature": repr(float(self.temperature))},
        )
        write_json(out / "teacher.json", self.meta())

    def meta(self) -> dict[str, Any]:
        """What `teacher.json` records (subclasses add their own keys)."""
        return {
            "kind": "frozen",
            "label_names": self.label_names,
            "config": self.cfg.model_dump(),
            "temperature": self.temperature,
            "encoder_fingerprint": self.encoder.fingerprint,
            "fingerprint": self.fingerprint,
            "params": self.num_params(),
            "fit": self.fit_info,
        }

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        encoder: SentenceEncoder | None = None,
        cache_dir: str | Path | None = None,
    ) -> FrozenEncoderTeacher:
        """Rebuild from `save`; refuses an encoder whose weights differ from the saved one's."""
        from safetensors.numpy import load_file

        d = Path(model_dir)
        meta = read_json(d / "teacher.json")
        if meta.get("kind") != "frozen":
            raise TinyStudentError(f"{d}: not a frozen teacher (kind {meta.get('kind')!r})")
        cfg = FrozenTeacherConfig(**meta["config"])
        if encoder is None:
            teacher = cls.from_config(meta["label_names"], cfg, cache_dir)
        else:
            teacher = cls(encoder, meta["label_names"], cfg)
        if teacher.encoder.fingerprint != meta["encoder_fingerprint"]:
            raise TinyStudentError(
                f"{d}: the encoder {cfg.model!r} found now differs from the one the head was "
                "fitted on; refit the teacher"
            )
        head = load_file(str(d / "head.safetensors"))
        teacher.weight = head["weight"].astype(np.float32)
        teacher.bias = head["bias"].astype(np.float32)
        teacher.temperature = float(meta["temperature"])
        teacher.fit_info = dict(meta.get("fit", {}))
        return teacher
