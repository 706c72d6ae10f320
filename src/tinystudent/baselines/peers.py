"""The peers a user would pick instead of our students: SetFit, and model2vec's classifier.

`setfit` is SetFit (contrastive tuning of a sentence encoder on pairs of the labelled texts,
then a logistic head) with the MiniLM-L6 body; `model2vec-clf` is model2vec's own
`StaticModelForClassification` (static token vectors distilled from the teacher, fine-tuned
with a small MLP head). Both cost minutes to train on a CPU, so a trained peer is cached under
a content key (kind, options, seed, the training texts and labels): a rerun of the benchmark
loads it instead of training again. Cached as safetensors + JSON, never as a pickle.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinystudent.baselines.base import Baseline, NotFittedError, check_fit_inputs, full_proba
from tinystudent.baselines.model2vec_baseline import DEFAULT_TOKEN_REMOVE, distill_static_model
from tinystudent.checkpoint import fingerprint
from tinystudent.io import read_json, save_safetensors, write_json


def peer_key(kind: str, options: dict[str, Any], texts: list[str], labels: list[int]) -> str:
    """Content key of a trained peer: anything that changes its weights changes the key."""
    opts = json.dumps(options, sort_keys=True, default=str)
    return f"{kind}-{fingerprint(kind, opts, texts, labels)[:20]}"


def publish(tmp: Path, target: Path) -> None:
    """Move a finished folder into place; a lost race with an identical writer is fine."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class SetFitBacked(Baseline):
    """A peer that ends as a trained SetFit model exported to our `SetFitTeacher` (`_teacher`):
    predicting, size and parameters are the teacher's."""

    _teacher: Any = None

    def _fitted(self) -> Any:
        if self._teacher is None:
            raise NotFittedError(f"{self.name}: call fit before predicting")
        return self._teacher

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """The encoder runs on every call (no embedding cache): what a user would pay."""
        return np.asarray(self._fitted().predict_proba(texts, use_cache=False), dtype=np.float64)

    def num_params(self) -> int:
        return int(self._fitted().num_params())

    def size_bytes(self) -> int:
        return int(self._fitted().size_bytes())


class SetFitPeer(SetFitBacked):
    """SetFit on the k gold examples (the library's recipe; see `teachers/setfit.py`)."""

    name = "setfit"
    content_cached = True

    def __init__(
        self,
        model: str = "minilm-l6",
        num_iterations: int = 20,
        epochs: int = 1,
        batch_size: int = 16,
        max_length: int = 128,
        cache_dir: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        from tinystudent.teachers.setfit import SetFitTeacherConfig

        self.cfg = SetFitTeacherConfig(
            model=model,
            num_iterations=num_iterations,
            epochs=epochs,
            batch_size=batch_size,
            max_length=max_length,
        )
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.seed = seed
        self._teacher = None
        self.from_cache = False
        self.path: Path | None = None  # the cached teacher folder, once fitted with a cache

    def fit(self, texts: list[str], labels: list[int], n_classes: int) -> SetFitPeer:
        from tinystudent.teachers.setfit import SetFitTeacher

        check_fit_inputs(texts, labels, n_classes)
        names = [str(i) for i in range(n_classes)]
        embed_cache = self.cache_dir / "embeddings" if self.cache_dir else None
        target = None
        if self.cache_dir is not None:
            options = {**self.cfg.model_dump(), "seed": self.seed, "n_classes": n_classes}
            target = self.cache_dir / "peers" / peer_key(self.name, options, texts, labels)
            self.path = target
            if (target / "teacher.json").is_file():
                self._teacher = SetFitTeacher.load(target, cache_dir=embed_cache)
                self.from_cache = True
                return self
        work = Path(tempfile.mkdtemp(prefix="tinystudent-setfit-"))  # holds the tuned body
        try:
            self._teacher = SetFitTeacher.train(
                names, self.cfg, texts, labels, self.seed, embed_cache, checkpoint_dir=work
            )
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
                self._teacher.save(tmp)
                publish(tmp, target)
                self._teacher = SetFitTeacher.load(target, cache_dir=embed_cache)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self


class Model2VecClassifier(Baseline):
    """model2vec's `StaticModelForClassification` over vectors distilled from `teacher`."""

    name = "model2vec-clf"
    content_cached = True

    def __init__(
        self,
        teacher: str = "minilm-l6",
        pca_dims: int | None = 256,
        n_layers: int = 1,
        hidden_dim: int = 512,
        max_epochs: int = -1,
        cache_dir: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        self.teacher = teacher
        self.pca_dims = pca_dims
        self.n_layers = n_layers
        self.hidden_dim = hidden_dim
        self.max_epochs = max_epochs
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.seed = seed
        self._clf: Any = None
        self._classes: list[int] = []
        self._n_classes = 0
        self.from_cache = False

    def _build(self, out_dim: int) -> Any:
        try:
            from model2vec.train import StaticModelForClassification
        except ImportError:
            hint = "pip install 'tinystudent[bench,setfit]'"
            raise ImportError(f"model2vec-clf needs model2vec and datasets: {hint}") from None
        m2v = None if self.cache_dir is None else self.cache_dir / "model2vec"
        static = distill_static_model(self.teacher, m2v, self.pca_dims, None, DEFAULT_TOKEN_REMOVE)
        return StaticModelForClassification.from_static_model(
            model=static, n_layers=self.n_layers, hidden_dim=self.hidden_dim, out_dim=out_dim
        )

    def fit(self, texts: list[str], labels: list[int], n_classes: int) -> Model2VecClassifier:
        check_fit_inputs(texts, labels, n_classes)
        self._n_classes = n_classes
        target = None
        if self.cache_dir is not None:
            fields = ("teacher", "pca_dims", "n_layers", "hidden_dim", "max_epochs", "seed")
            options = {f: getattr(self, f) for f in fields}
            target = self.cache_dir / "peers" / peer_key(self.name, options, texts, labels)
            if (target / "classifier.json").is_file():
                self._load(target)
                self.from_cache = True
                return self
        classes = sorted(set(labels))
        clf = self._build(len(classes))
        # classes as zero-padded strings: model2vec sorts them, and "10" < "2" would reorder
        clf.fit(
            list(texts),
            [f"{y:06d}" for y in labels],
            max_epochs=self.max_epochs,
            random_seed=self.seed,
            device="cpu",
        )
        self._clf = clf.eval()
        self._classes = [int(c) for c in clf.classes_]
        if target is not None:
            self._save(target)
        return self

    def _save(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        state = {k: v.detach().contiguous() for k, v in self._clf.state_dict().items()}
        save_safetensors(tmp / "classifier.safetensors", state, {"format": "pt"})
        write_json(tmp / "classifier.json", {"classes": self._classes})
        publish(tmp, target)

    def _load(self, target: Path) -> None:
        from safetensors.torch import load_file

        self._classes = [int(c) for c in read_json(target / "classifier.json")["classes"]]
        clf = self._build(len(self._classes))
        clf.load_state_dict(load_file(str(target / "classifier.safetensors")))
        clf.classes_ = [f"{c:06d}" for c in self._classes]
        self._clf = clf.eval()

    def _fitted(self) -> Any:
        if self._clf is None:
            raise NotFittedError(f"{self.name}: call fit before predicting")
        return self._clf

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            proba = self._fitted().predict_proba(list(texts))
        return full_proba(np.asarray(proba), self._classes, self._n_classes)

    def num_params(self) -> int:
        return int(sum(p.numel() for p in self._fitted().parameters()))

    def size_bytes(self) -> int:
        """Weights at their stored width (float32 after fine-tuning) + the tokenizer JSON."""
        clf = self._fitted()
        weights = sum(p.numel() * p.element_size() for p in clf.parameters())
        return int(weights + len(clf.tokenizer.to_str().encode("utf-8")))
