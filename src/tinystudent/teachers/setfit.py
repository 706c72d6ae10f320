"""SetFit as a teacher: contrastive fine-tuning of a sentence encoder, then a logistic head.

SetFit (Tunstall et al. 2022) is what a practitioner with a few dozen labels would pick
instead of fine-tuning a classifier: pairs of the k examples (same class: similarity 1,
different: 0) tune the encoder with a cosine loss, then a logistic regression is fitted on
the tuned embeddings. Training runs in the real `setfit` library (`pip install
'tinystudent[setfit]'`); the result is then held as a `FrozenEncoderTeacher` over the tuned
encoder, so labelling, the embedding cache, MC-dropout samples and the layer source are those
of the frozen teacher, and predicting needs neither setfit nor sklearn.

Saved as the tuned body (sentence-transformers' own folder, safetensors weights) plus the
head as safetensors: the library's `model_head.pkl` is a joblib pickle and is never written
or read. Resume: the contrastive phase is the cost, so its body is kept in the stage's
checkpoint directory; a rerun after a kill during the head fit or the save starts from it,
and a kill during the contrastive phase restarts that phase (Trainer checkpoints are pickles).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from tinystudent.assets import resolve_model
from tinystudent.baselines.base import check_fit_inputs
from tinystudent.checkpoint import fingerprint
from tinystudent.devices import resolve_device
from tinystudent.errors import TinyStudentError
from tinystudent.io import read_json, save_safetensors, write_json
from tinystudent.teachers.frozen import (
    FrozenEncoderTeacher,
    FrozenTeacherConfig,
    SentenceEncoder,
    linear_head,
)
from tinystudent.teachers.layers import LayerSource

#: Bump when training or prediction gives other outputs for the same inputs.
CODE_VERSION = 1
SETFIT_HINT = "pip install 'tinystudent[setfit]'"
#: Our numpy head on the exported body must reproduce setfit's own probabilities.
EXPORT_TOLERANCE = 1e-3


class SetFitTeacherConfig(BaseModel):
    """SetFit's options; defaults are the library's (20 pair iterations, 1 epoch, batch 16)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["setfit"] = "setfit"
    model: str = Field("minilm-l6", description="sentence-transformers body (name or path)")
    num_iterations: int = Field(20, ge=1, description="positive+negative pairs per example")
    epochs: int = Field(1, ge=1, description="contrastive epochs over the pairs")
    batch_size: int = Field(16, ge=1, description="pairs per contrastive step")
    lr: float = Field(2e-5, gt=0, description="body learning rate (setfit's default)")
    max_length: int = Field(128, ge=8, le=512, description="tokens kept per text")
    predict_batch_size: int = Field(64, ge=1)
    seed: int | None = Field(None, ge=0, description="training seed; None: the data's seed")


def _import_setfit() -> Any:
    try:
        import setfit
    except ImportError:
        raise ImportError(f"the setfit teacher needs the package 'setfit': {SETFIT_HINT}") from None
    return setfit


def body_layout(body_dir: Path) -> bool:
    """Whether a saved sentence-transformers body normalises; refuses anything but a
    transformer, mean pooling and an optional Normalize (what `SentenceEncoder` computes)."""
    modules = read_json(body_dir / "modules.json")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise TinyStudentError(f"{body_dir}: setfit body modules {kinds} are not supported")
    pooling = read_json(body_dir / modules[1]["path"] / "config.json")
    mode = pooling.get("pooling_mode", "mean" if pooling.get("pooling_mode_mean_tokens") else None)
    if mode not in ("mean", ["mean"]):
        raise TinyStudentError(f"{body_dir}: setfit body pools with {mode!r}, not mean")
    return kinds[2:] == ["Normalize"]


class SetFitTeacher:
    """A SetFit-tuned encoder and its head, served as a frozen teacher over the tuned body."""

    def __init__(
        self,
        inner: FrozenEncoderTeacher,
        cfg: SetFitTeacherConfig,
        fit_info: dict[str, Any] | None = None,
    ) -> None:
        self.inner = inner
        self.cfg = cfg
        self.label_names = inner.label_names
        self.fit_info = dict(fit_info or {})
        self.resumed_body = False
        self._body_source: Path | None = None  # the tuned body folder `save` copies

    @property
    def encoder(self) -> SentenceEncoder:
        return self.inner.encoder

    def to(self, device: str | torch.device) -> SetFitTeacher:
        """Embed on `device` (the tuned body runs there; the head stays a numpy matmul)."""
        self.inner.to(device)
        return self

    # -- training --------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        label_names: list[str],
        cfg: SetFitTeacherConfig,
        texts: list[str],
        labels: list[int],
        seed: int = 0,
        cache_dir: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> SetFitTeacher:
        """Run SetFit on the k-shot set, on `device`; `cfg.seed` wins over `seed` (the
        data's)."""
        device = resolve_device(device)
        check_fit_inputs(texts, labels, len(label_names))
        seed = cfg.seed if cfg.seed is not None else seed
        base = resolve_model(cfg.model)
        key = fingerprint("setfit", cfg.model_dump(), base, seed, texts, labels)
        work = Path(checkpoint_dir) if checkpoint_dir else Path(tempfile.mkdtemp("-setfit"))
        body = work / "body"
        try:
            resumed = (work / "body.json").is_file() and read_json(work / "body.json") == key
            model = _setfit_model(str(body if resumed else base), seed, str(device))
            model.model_body.max_seq_length = cfg.max_length
            if not resumed:
                shutil.rmtree(body, ignore_errors=True)
                _contrastive(model, cfg, texts, labels, seed, work / "trainer")
                _save_body(model, body)
                write_json(work / "body.json", key)
            model.fit(texts, labels, num_epochs=1, show_progress_bar=False)  # the LR head only
            info = {"seed": seed, "n_train": len(texts)}
            info["pairs"] = 2 * cfg.num_iterations * len(texts)
            teacher = cls.from_setfit_model(
                model, body, cfg, label_names, texts, info, cache_dir, device
            )
            teacher.resumed_body = resumed
            return teacher
        finally:
            if checkpoint_dir is None:
                shutil.rmtree(work, ignore_errors=True)

    @classmethod
    def from_setfit_model(
        cls,
        model: Any,
        body: Path,
        cfg: SetFitTeacherConfig,
        label_names: list[str],
        check_texts: list[str],
        fit_info: dict[str, Any],
        cache_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> SetFitTeacher:
        """A trained SetFitModel (its body saved at `body`) as our frozen teacher on `device`;
        refuses an export whose probabilities on `check_texts` differ from setfit's own."""
        encoder = SentenceEncoder.from_pretrained(
            str(body), cfg.max_length, body_layout(body), cfg.predict_batch_size, cache_dir
        )
        frozen = FrozenEncoderTeacher(encoder, label_names, _frozen_cfg(cfg)).to(
            resolve_device(device)
        )
        frozen.weight, frozen.bias = linear_head(model.model_head, len(label_names))
        diff = _export_gap(model, frozen, check_texts)
        if diff > EXPORT_TOLERANCE:
            raise TinyStudentError(
                f"setfit teacher: the exported head differs from setfit's by {diff:.2g}"
            )
        teacher = cls(frozen, cfg, {**fit_info, "max_abs_diff_vs_setfit": diff})
        teacher._body_source = body  # copied into the teacher folder by `save`
        return teacher

    # -- inference (all of it the frozen teacher's) -----------------------------------------
    def predict_proba(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        return self.inner.predict_proba(texts, use_cache=use_cache)

    def predict_proba_samples(self, texts: list[str], n: int, seed: int = 0) -> np.ndarray:
        return self.inner.predict_proba_samples(texts, n, seed)

    def embed(self, texts: list[str], cache_dir: str | Path | None = None) -> np.ndarray:
        return self.inner.embed(texts, cache_dir)

    def layer_source(self, attentions: bool = False) -> LayerSource:
        return self.inner.layer_source(attentions)

    @property
    def fingerprint(self) -> str:
        """The tuned body's weights and the head (through the frozen teacher's fingerprint)."""
        return hashlib.sha256(f"setfit|{self.inner.fingerprint}".encode()).hexdigest()[:32]

    def num_params(self) -> int:
        return self.inner.num_params()

    def size_bytes(self) -> int:
        return self.inner.size_bytes()

    # -- persistence -----------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> None:
        """`body/` (the tuned encoder, safetensors) + `head.safetensors` + `teacher.json`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        source = getattr(self, "_body_source", None)
        if source is not None and Path(source).resolve() != (out / "body").resolve():
            tmp = Path(tempfile.mkdtemp(prefix=".body-", dir=out))
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            shutil.rmtree(out / "body", ignore_errors=True)
            tmp.rename(out / "body")
            self._body_source = out / "body"
        self.encoder.weights_path = out / "body" / "model.safetensors"
        save_safetensors(
            out / "head.safetensors",
            {"weight": _tensor(self.inner.weight), "bias": _tensor(self.inner.bias)},
            {"format": "pt"},
        )
        write_json(
            out / "teacher.json",
            {
                "kind": "setfit",
                "label_names": self.label_names,
                "config": self.cfg.model_dump(),
                "encoder_fingerprint": self.encoder.fingerprint,
                "fingerprint": self.fingerprint,
                "params": self.num_params(),
                "fit": self.fit_info,
            },
        )

    @classmethod
    def load(cls, model_dir: str | Path, cache_dir: str | Path | None = None) -> SetFitTeacher:
        """Rebuild from `save`; refuses a body whose weights differ from the saved ones."""
        from safetensors.numpy import load_file

        d = Path(model_dir)
        meta = read_json(d / "teacher.json")
        if meta.get("kind") != "setfit":
            raise TinyStudentError(f"{d}: not a setfit teacher (kind {meta.get('kind')!r})")
        cfg = SetFitTeacherConfig(**meta["config"])
        body = d / "body"
        encoder = SentenceEncoder.from_pretrained(
            str(body), cfg.max_length, body_layout(body), cfg.predict_batch_size, cache_dir
        )
        if encoder.fingerprint != meta["encoder_fingerprint"]:
            raise TinyStudentError(f"{d}: the saved body does not match its fingerprint")
        frozen = FrozenEncoderTeacher(encoder, meta["label_names"], _frozen_cfg(cfg))
        head = load_file(str(d / "head.safetensors"))
        frozen.weight = head["weight"].astype(np.float32)
        frozen.bias = head["bias"].astype(np.float32)
        teacher = cls(frozen, cfg, meta.get("fit"))
        teacher._body_source = body
        return teacher


def _frozen_cfg(cfg: SetFitTeacherConfig) -> FrozenTeacherConfig:
    return FrozenTeacherConfig(
        model=cfg.model, max_length=cfg.max_length, batch_size=cfg.predict_batch_size, c=1.0
    )


def _tensor(a: np.ndarray) -> Any:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _setfit_model(path: str, seed: int, device: str = "cpu") -> Any:
    """A SetFitModel on `device` with the library's default head (sklearn LR)."""
    setfit = _import_setfit()
    from transformers import set_seed

    set_seed(seed)  # the LR head and any freshly built pooling are seeded too
    return setfit.SetFitModel.from_pretrained(path, device=device, local_files_only=True)


def _contrastive(
    model: Any,
    cfg: SetFitTeacherConfig,
    texts: list[str],
    labels: list[int],
    seed: int,
    out: Path,
) -> None:
    """The library's embedding phase only (its progress bar is the stage's); no checkpoints:
    the Trainer's are pickles, and the phase restarts after a kill."""
    setfit = _import_setfit()
    from datasets import Dataset

    args = setfit.TrainingArguments(
        output_dir=str(out),
        batch_size=cfg.batch_size,
        num_epochs=cfg.epochs,
        num_iterations=cfg.num_iterations,
        body_learning_rate=cfg.lr,
        max_length=cfg.max_length,
        seed=seed,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
    )
    data = Dataset.from_dict({"text": list(texts), "label": list(labels)})
    trainer = setfit.Trainer(model=model, args=args, train_dataset=data)
    trainer.train_embeddings(list(texts), list(labels), args=args)
    shutil.rmtree(out, ignore_errors=True)


def _save_body(model: Any, body: Path) -> None:
    """The tuned body as sentence-transformers writes it (safetensors), renamed into place."""
    body.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".body-", dir=body.parent))
    try:
        model.model_body.save(str(tmp), safe_serialization=True)
        if not (tmp / "model.safetensors").is_file():
            raise TinyStudentError(f"setfit body saved without model.safetensors: {tmp}")
        tmp.rename(body)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export_gap(model: Any, frozen: FrozenEncoderTeacher, texts: list[str]) -> float:
    """Largest probability difference between setfit's predict_proba and ours on `texts`."""
    theirs = np.asarray(model.predict_proba(texts, as_numpy=True), dtype=np.float64)
    mine = frozen.predict_proba(texts, use_cache=False)
    classes = np.asarray(model.model_head.classes_, dtype=int)
    return float(np.abs(mine[:, classes] - theirs).max())
