"""Every teacher kind behind one lifecycle: fit (or reload), save, size and time.

The pipeline and the bench look a teacher kind up here by its config's `kind` and never
branch on classes. A kind is one `TeacherKind`: its config model, the module whose code
version keys its stage, the cache folder its per-text work lives in, and four calls (fit,
load, the timed call, size). Adding a kind is its module plus one entry in `TEACHERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from tinystudent.devices import resolve_device
from tinystudent.errors import RecipeError
from tinystudent.evaluate import throughput
from tinystudent.teachers import encoder, frozen, lexical, llm, setfit
from tinystudent.teachers import multilabel as multilabel_code


@dataclass(frozen=True)
class FitRequest:
    """What fitting a teacher reads: its classes and config, the gold set, where to keep
    per-text work (`cache_dir`) and unfinished training state (`checkpoint_dir`), and the
    torch device it trains and predicts on (the recipe's `device`, resolved)."""

    label_names: list[str]
    cfg: Any
    texts: list[str]
    gold: Any  # class ids, or [n, C] 0/1 targets for multi-label data
    seed: int
    cache_dir: Path
    checkpoint_dir: Path | None
    multi_label: bool = False
    device: torch.device = torch.device("cpu")


@dataclass(frozen=True)
class TeacherKind:
    """One teacher kind. `fit` returns the teacher and what lands in its `train_log.json`;
    `timed` gives the call a user pays for per batch (no cache of per-text work), `size` the
    bytes it ships as (its saved folder, when there is one, may say)."""

    name: str
    config: type
    module: ModuleType  # its CODE_VERSION keys the teacher stage (read at use: tests bump it)
    cache: str
    fit: Callable[[FitRequest], tuple[Any, dict[str, Any]]]
    load: Callable[[Path, Path, bool], Any]  # (saved dir, cache dir, multi_label)
    timed: Callable[[Any], Callable[[list[str]], Any]]
    size: Callable[[Any, Path | None], int]
    probe_limit: int | None = None  # time on at most this many texts (an LLM is slow)

    @property
    def code_version(self) -> int:
        return int(self.module.CODE_VERSION)

    def open(
        self, saved: Path, cache: Path, multi_label: bool, device: str | torch.device = "cpu"
    ) -> Any:
        """`load`, then the teacher moved to `device` (resolved here: on a Ray worker, its
        own machine's answer to `auto`)."""
        return self.load(saved, cache, multi_label).to(resolve_device(device))

    def cost(self, teacher: Any, saved: Path | None, probe: list[str]) -> tuple[int, float]:
        """(bytes, texts/s in this process) for the report."""
        probe = probe[: self.probe_limit] if self.probe_limit else probe
        return self.size(teacher, saved), throughput(self.timed(teacher), probe, min_seconds=1.0)


def _uncached(teacher: Any) -> Callable[[list[str]], Any]:
    return lambda texts: teacher.predict_proba(texts, use_cache=False)


def _own_size(teacher: Any, saved: Path | None) -> int:
    return int(teacher.size_bytes())


# -- fine-tuned encoder -----------------------------------------------------------------------
def _fit_encoder(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    from tinystudent.seed import seed_everything

    seed = req.seed if req.cfg.seed is None else req.cfg.seed  # the config's wins
    seed_everything(seed)  # the new head's init must not depend on what ran before
    teacher = encoder.EncoderTeacher.from_pretrained(req.label_names, req.cfg).to(req.device)
    losses = teacher.fine_tune(req.texts, req.gold, seed=seed, checkpoint_dir=req.checkpoint_dir)
    return teacher, {"epoch_losses": losses, "resumed_from_epoch": teacher.resumed_from_epoch}


def _encoder_size(teacher: Any, saved: Path | None) -> int:
    """The saved safetensors file, or 4 bytes a weight before it is saved."""
    if saved is not None and (saved / "teacher.safetensors").is_file():
        return (saved / "teacher.safetensors").stat().st_size
    return 4 * int(teacher.num_params())


# -- frozen encoder + linear head ---------------------------------------------------------------
def _frozen_class(multi_label: bool) -> Any:
    return multilabel_code.MultiLabelFrozenTeacher if multi_label else frozen.FrozenEncoderTeacher


def _fit_frozen(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    teacher = _frozen_class(req.multi_label).from_config(req.label_names, req.cfg, req.cache_dir)
    teacher.to(req.device)
    return teacher, {"fit": teacher.fit(req.texts, req.gold, seed=req.seed)}


def _load_frozen(saved: Path, cache: Path, multi_label: bool) -> Any:
    return _frozen_class(multi_label).load(saved, cache_dir=cache)


# -- LLM ---------------------------------------------------------------------------------------
def _fit_llm(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    teacher = llm.LLMTeacher.from_config(req.label_names, req.cfg, req.cache_dir).to(req.device)
    return teacher, {"fit": teacher.fit(req.texts, req.gold, seed=req.seed)}


def _llm_timed(teacher: Any) -> Callable[[list[str]], Any]:
    """Without its score cache (timed on 32 texts: it is slow); sized as 4 bytes a weight."""
    return lambda texts: teacher.calibrate(teacher.raw_scores(texts, use_cache=False))


# -- SetFit ------------------------------------------------------------------------------------
def _fit_setfit(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    """Its tuned body waits in `checkpoint_dir` until the teacher is saved, so a rerun after a
    kill past the contrastive phase only refits the head."""
    teacher = setfit.SetFitTeacher.train(
        req.label_names,
        req.cfg,
        req.texts,
        req.gold,
        seed=req.seed,
        cache_dir=req.cache_dir,
        checkpoint_dir=req.checkpoint_dir,
        device=req.device,
    )
    return teacher, {
        "fit": teacher.fit_info,
        "resumed_after_contrastive_phase": teacher.resumed_body,
    }


# -- TF-IDF ------------------------------------------------------------------------------------
def _fit_tfidf(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    teacher = lexical.TfidfTeacher.from_config(req.label_names, req.cfg)
    return teacher, teacher.fit(req.texts, req.gold, seed=req.seed)


TEACHERS: dict[str, TeacherKind] = {
    k.name: k
    for k in (
        TeacherKind(
            "finetune",
            encoder.EncoderTeacherConfig,
            encoder,
            "embeddings",
            _fit_encoder,
            lambda saved, cache, ml: encoder.EncoderTeacher.load(saved),
            lambda teacher: teacher.predict_proba,
            _encoder_size,
        ),
        TeacherKind(
            "frozen",
            frozen.FrozenTeacherConfig,
            frozen,
            "embeddings",
            _fit_frozen,
            _load_frozen,
            _uncached,
            _own_size,
        ),
        TeacherKind(
            "llm",
            llm.LLMTeacherConfig,
            llm,
            "llm-scores",
            _fit_llm,
            lambda saved, cache, ml: llm.LLMTeacher.load(saved, cache_dir=cache),
            _llm_timed,
            lambda teacher, saved: 4 * int(teacher.num_params()),
            probe_limit=32,
        ),
        TeacherKind(
            "setfit",
            setfit.SetFitTeacherConfig,
            setfit,
            "embeddings",
            _fit_setfit,
            lambda saved, cache, ml: setfit.SetFitTeacher.load(saved, cache_dir=cache),
            _uncached,
            _own_size,
        ),
        TeacherKind(
            "tfidf",
            lexical.TfidfTeacherConfig,
            lexical,
            "tfidf",
            _fit_tfidf,
            lambda saved, cache, ml: lexical.TfidfTeacher.load(saved),
            _uncached,
            _own_size,
        ),
    )
}


def kind_of(cfg: Any) -> TeacherKind:
    """The registry entry of a teacher config (a finetune config has no `kind` field)."""
    name = str(getattr(cfg, "kind", "finetune"))
    if name not in TEACHERS:
        raise RecipeError(f"unknown teacher kind {name!r} (choose from {list(TEACHERS)})")
    return TEACHERS[name]


#: `teacher.json`'s `kind` where it differs from the recipe's (the fine-tuned encoder).
SAVED_KINDS = {"encoder": "finetune"}


def load_saved(saved: str | Path, cache_root: str | Path, device: str = "cpu") -> Any:
    """Any saved teacher, its kind read from its `teacher.json`, on `device`; its per-text
    work (embeddings, LM scores) is looked up under `cache_root`, as the pipeline's run cache
    lays it out."""
    from tinystudent.errors import TinyStudentError
    from tinystudent.io import read_json

    d = Path(saved)
    if not (d / "teacher.json").is_file():
        raise TinyStudentError(f"{d}: no teacher.json; is this a saved teacher?")
    meta = read_json(d / "teacher.json")
    name = str(meta.get("kind"))
    kind = TEACHERS.get(SAVED_KINDS.get(name, name))
    if kind is None:
        raise TinyStudentError(f"{d}: unknown teacher kind {name!r} in teacher.json")
    return kind.open(d, Path(cache_root) / kind.cache, bool(meta.get("multi_label")), device)
