"""A transformer encoder with a mean-pooled classification head, fine-tuned on the k-shot set.

Mean pooling matches how sentence-transformers checkpoints (the default MiniLM) were trained,
so the head starts from embeddings that already separate meanings well.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from pickle import UnpicklingError  # only to report torch's refusal; nothing is unpickled here
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from torch import nn

from tinystudent.assets import resolve_model
from tinystudent.checkpoint import fingerprint, hash_weights, open_checkpoint, slow_step
from tinystudent.code_version import versioned
from tinystudent.errors import TinyStudentError
from tinystudent.io import read_json, save_safetensors, write_json
from tinystudent.safety import UnsafeWeightsError, check_weights_dir, one_line, pickle_files
from tinystudent.seed import seed_everything
from tinystudent.teachers.layers import LayerSource

#: Bump when fine-tuning or prediction gives other outputs for the same inputs: the teacher
#: stage, its labels and the student rerun (see `tinystudent.code_version`).
CODE_VERSION = 1


class EncoderTeacherConfig(BaseModel):
    """How to fine-tune the encoder teacher; defaults suit ~100 examples on a CPU."""

    model_config = ConfigDict(extra="forbid")

    model: str = "minilm-l6"
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(5e-5, gt=0)
    head_lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    max_length: int = Field(64, ge=8, le=512)
    dropout: float = Field(0.1, ge=0, lt=1)
    predict_batch_size: int = Field(64, ge=1)
    # Off by default: a model directory's own Python code would run on load.
    trust_remote_code: bool = False
    # Off by default: pickle weights (.bin, .pt, ...) can run code on load; see safety.py.
    # Excluded from dumps (and so from stage hashes): it picks a file format, not the outputs.
    allow_pickle: bool = Field(False, exclude=True)
    seed: int | None = Field(
        None,
        ge=0,
        description="training seed (head init, dropout, batch order); None: the data's seed. "
        "Members of `teachers` that fine-tune one model with several seeds form a seed ensemble",
    )

    @model_serializer(mode="wrap")
    def _hash_stable(self, handler: SerializerFunctionWrapHandler, info: Any) -> dict[str, Any]:
        """Leave `seed: None` (added later) out of stage hashes, so teachers fitted before it
        existed keep their finished stages."""
        out: dict[str, Any] = handler(self)
        if (info.context or {}).get("stage_hash") and out.get("seed", 0) is None:
            out.pop("seed")
        return out


def length_sorted_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    """Index batches of similar length: padding costs compute, so sort before batching."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class EncoderTeacher(nn.Module):
    """Encoder + mean pooling + linear head; saved as one safetensors file plus configs."""

    def __init__(
        self, backbone: nn.Module, tokenizer, label_names: list[str], cfg: EncoderTeacherConfig
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.cfg = cfg
        hidden = int(backbone.config.hidden_size)  # type: ignore[union-attr,arg-type]
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(hidden, len(label_names))
        self._fingerprint: str | None = None
        self.resumed_from_epoch = 0

    @classmethod
    def from_pretrained(cls, label_names: list[str], cfg: EncoderTeacherConfig) -> EncoderTeacher:
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model(cfg.model)
        check_weights_dir(path, "teacher.model", cfg.allow_pickle, "set teacher.allow_pickle: true")
        try:
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
            backbone = AutoModel.from_pretrained(
                path,
                trust_remote_code=cfg.trust_remote_code,
                # None lets transformers fall back to .bin (its loader uses weights_only=True).
                use_safetensors=None if cfg.allow_pickle else True,
            )
        except (OSError, ValueError, UnpicklingError) as e:
            # missing files, custom code refused, a bad config, an opted-in pickle that
            # torch's weights-only loader rejected
            raise TinyStudentError(
                f"teacher.model {cfg.model!r}: cannot load ({one_line(e)})"
            ) from None
        return cls(backbone, tok, label_names, cfg)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        h = out.last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))

    @property
    def device(self) -> torch.device:
        """Where the weights are: `to(device)` moves them, and inference follows."""
        return self.head.weight.device

    def _encode(self, texts: list[str], on_device: bool = True) -> dict[str, torch.Tensor]:
        """Token ids and mask, on the teacher's device (or the CPU, for the engine to move)."""
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.cfg.max_length,
            return_tensors="pt",
        )
        dev = self.device if on_device else torch.device("cpu")
        return {
            "input_ids": enc["input_ids"].to(dev),
            "attention_mask": enc["attention_mask"].to(dev),
        }

    def fine_tune(
        self,
        texts: list[str],
        labels: list[int],
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
    ) -> list[float]:
        """Plain supervised fine-tuning; returns the mean loss of each epoch.

        With `checkpoint_dir`, the full training state is saved after every epoch and a
        rerun with the same inputs continues after the last finished epoch, ending with the
        same weights as an uninterrupted run. `self.resumed_from_epoch` tells how many
        epochs were restored (0 for a fresh start).
        """
        from tinystudent.train.engine import Fit, Hooks
        from tinystudent.train.strategy import Strategy

        seed_everything(seed)
        cfg = self.cfg
        key = fingerprint("teacher", cfg.model_dump(), seed, texts, labels, self.fingerprint)
        head_params = list(self.head.parameters())
        body_params = [p for n, p in self.named_parameters() if not n.startswith("head.")]
        opt = torch.optim.AdamW(
            [{"params": body_params, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}],
            weight_decay=cfg.weight_decay,
        )
        fit = Fit(
            self,
            opt,
            list(self.parameters()),
            total_steps=cfg.epochs * math.ceil(len(texts) / cfg.batch_size),
            epochs=cfg.epochs,
            schedule="warmup_times_decay",
            checkpoint=open_checkpoint(checkpoint_dir, key),
            generator=torch.Generator().manual_seed(seed),
            desc="teacher fine-tune",
            strategy=Strategy(self.device),  # where `to(...)` put the teacher
        )
        y_all = torch.tensor(labels)
        losses: list[float] = []

        def batches(epoch: int) -> list[list[int]]:
            perm = torch.randperm(len(texts), generator=fit.generator).tolist()
            return [perm[i : i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]

        def prepare(idx: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            return self._encode([texts[j] for j in idx], on_device=False), y_all[idx]

        def step(batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
            enc, y = batch
            return {"loss": nn.functional.cross_entropy(self(**enc), y)}

        def score(epoch: int, means: dict[str, float]) -> None:
            losses.append(means["loss"])

        def load(state: dict) -> None:
            losses[:] = [float(x) for x in state["losses"]]

        hooks = Hooks(
            batches, step, score, save=lambda: {"losses": losses}, load=load, prepare=prepare
        )
        done = fit.run(hooks)
        self.resumed_from_epoch = done.resumed_epochs
        self.eval()
        self._fingerprint = None
        return losses

    @torch.inference_mode()
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities in input order, computed in length-sorted batches."""
        self.eval()
        slow_step()
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        for idx in length_sorted_batches(texts, self.cfg.predict_batch_size):
            logits = self(**self._encode([texts[i] for i in idx]))
            out[idx] = torch.softmax(logits.float(), -1).cpu().numpy()
        return out

    @torch.no_grad()
    def predict_proba_samples(self, texts: list[str], n: int, seed: int = 0) -> np.ndarray:
        """[n, len(texts), C] Monte-Carlo dropout: n passes with the model's own dropout on
        (backbone and head), seeded, for the uncertainty amalgamation (amalgamate.py)."""
        slow_step()
        out = np.zeros((n, len(texts), len(self.label_names)), dtype=np.float32)
        was_training = self.training
        self.train()
        try:
            for i in range(n):
                torch.manual_seed(seed + i)
                for idx in length_sorted_batches(texts, self.cfg.predict_batch_size):
                    logits = self(**self._encode([texts[j] for j in idx]))
                    out[i, idx] = torch.softmax(logits.float(), -1).cpu().numpy()
        finally:
            self.train(was_training)
        return out

    @property
    def dim(self) -> int:
        return int(self.head.in_features)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """[len(texts), dim] mean-pooled backbone outputs: the vector the head reads."""
        self.eval()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx in length_sorted_batches(texts, self.cfg.predict_batch_size):
            enc = self._encode([texts[i] for i in idx])
            h = self.backbone(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            out[idx] = ((h * mask).sum(1) / mask.sum(1).clamp(min=1.0)).float().cpu().numpy()
        return out

    def embed(self, texts: list[str], cache_dir: str | Path | None = None) -> np.ndarray:
        """Sentence embeddings, through a content-keyed cache under `cache_dir` when given."""
        if cache_dir is None:
            return self.encode(texts)
        from tinystudent.label.embeddings import embed_texts

        vectors, _ = embed_texts(self, texts, cache_dir, desc="teacher embeddings")
        return vectors

    def layer_source(self, attentions: bool = False) -> LayerSource:
        return LayerSource(self.backbone, self.tokenizer, attentions)

    @property
    def fingerprint(self) -> str:
        """Hash of the weights and of everything that changes predictions (length, labels)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"{self.cfg.max_length}|{self.label_names}".encode())
            h.update(versioned("", CODE_VERSION).encode())  # nothing at version 1
            hash_weights(h, self.state_dict().items())
            self._fingerprint = h.hexdigest()[:32]
        return self._fingerprint

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.config.save_pretrained(out)  # type: ignore[union-attr,operator]
        self.tokenizer.save_pretrained(out)
        save_safetensors(out / "teacher.safetensors", self.state_dict(), {"format": "pt"})
        write_json(
            out / "teacher.json",
            {
                "kind": "encoder",
                "label_names": self.label_names,
                "config": self.cfg.model_dump(),
                "fingerprint": self.fingerprint,
                "params": self.num_params(),
            },
        )

    @classmethod
    def load(cls, model_dir: str | Path) -> EncoderTeacher:
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        d = Path(model_dir)
        weights = d / "teacher.safetensors"
        if not weights.exists():
            found = ", ".join(p.name for p in pickle_files(d)) if d.is_dir() else ""
            if found:  # our own format is safetensors only: pickle here is never ours
                raise UnsafeWeightsError(
                    f"{d}: no teacher.safetensors, only pickle-based files ({found}); "
                    "refusing to unpickle them (it can run code); retrain the teacher"
                )
            raise TinyStudentError(f"{d}: no teacher.safetensors; is this a saved teacher?")
        meta = read_json(d / "teacher.json")
        cfg = EncoderTeacherConfig(**meta["config"])
        remote = cfg.trust_remote_code
        backbone = AutoModel.from_config(
            AutoConfig.from_pretrained(d, trust_remote_code=remote), trust_remote_code=remote
        )
        tok = AutoTokenizer.from_pretrained(d, trust_remote_code=remote)
        teacher = cls(backbone, tok, meta["label_names"], cfg)
        teacher.load_state_dict(load_file(str(weights)))
        teacher.eval()
        return teacher
