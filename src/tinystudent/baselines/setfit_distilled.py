"""SetFit's own answer to "too slow": its `DistillationTrainer`, as a benchmark peer.

The teacher is the `setfit` peer (SetFit on the k gold examples; its trained body is shared
through the peer cache, so a bench that lists both trains it once). setfit then distils it
into a smaller sentence transformer (paraphrase-MiniLM-L3-v2 by default) on unlabeled texts,
the same pool our students learn from: pairs of pool texts, the student's cosine similarity
regressed on the teacher's, then a logistic head on the teacher's hard labels of the pool.
All of that runs in the real library (`setfit.DistillationTrainer.train`); the result is held
like the `setfit` peer (tuned body + head as safetensors, no pickles) and predicts with the
distilled body and head. Trained peers are cached under a content key (options, seed, gold
texts and labels, the unlabeled sample), so a rerun loads instead of training again.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tinystudent.baselines.base import check_fit_inputs
from tinystudent.baselines.peers import SetFitBacked, SetFitPeer, peer_key, publish
from tinystudent.baselines.st_body import MINILM_L3, resolve_body
from tinystudent.errors import DataError


class SetFitDistilledPeer(SetFitBacked):
    """A SetFit teacher (k gold examples) distilled by setfit into a small body on the pool."""

    name = "setfit-distilled"
    content_cached: ClassVar[bool] = True
    uses_pool: ClassVar[bool] = True

    def __init__(
        self,
        teacher: str = "minilm-l6",
        teacher_iterations: int = 20,
        student: str = MINILM_L3,
        n_unlabeled: int = 1000,
        num_iterations: int = 20,
        max_steps: int = 500,
        batch_size: int = 16,
        max_length: int = 128,
        cache_dir: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        if n_unlabeled < 2 or num_iterations < 1 or max_steps < 1 or batch_size < 1:
            raise DataError("setfit-distilled: n_unlabeled >= 2, the others >= 1")
        self.teacher = teacher
        self.teacher_iterations = teacher_iterations
        self.student = student
        self.n_unlabeled = n_unlabeled
        self.num_iterations = num_iterations
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.max_length = max_length
        # Without a cache the teacher and the distilled body still need a folder: a private one.
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="tinystudent-distilled-"))
        self.seed = seed
        self.pool: list[str] = []
        self.pool_used = 0
        self._teacher = None
        self.from_cache = False

    def options(self) -> dict[str, Any]:
        fields = (
            "teacher", "teacher_iterations", "student", "n_unlabeled", "num_iterations",
            "max_steps", "batch_size", "max_length", "seed",
        )  # fmt: skip
        return {f: getattr(self, f) for f in fields}

    def unlabeled(self, gold: list[str]) -> list[str]:
        """A seeded sample of `n_unlabeled` pool texts (gold texts left out)."""
        seen = set(gold)
        pool = [t for t in dict.fromkeys(self.pool) if t not in seen]
        if len(pool) < 2:
            raise DataError(
                f"{self.name} distils on unlabeled texts; got {len(pool)} (set .pool first; "
                "the benchmark passes its pool)"
            )
        order = np.random.default_rng(self.seed).permutation(len(pool))[: self.n_unlabeled]
        return [pool[i] for i in order]

    def fit(self, texts: list[str], labels: list[int], n_classes: int) -> SetFitDistilledPeer:
        from tinystudent.teachers.setfit import SetFitTeacher

        check_fit_inputs(texts, labels, n_classes)
        unlabeled = self.unlabeled(texts)
        self.pool_used = len(unlabeled)
        embed_cache = self.cache_dir / "embeddings"
        options = {**self.options(), "n_classes": n_classes}
        target = (
            self.cache_dir / "peers" / peer_key(self.name, options, [*texts, *unlabeled], labels)
        )
        if (target / "teacher.json").is_file():
            self._teacher = SetFitTeacher.load(target, cache_dir=embed_cache)
            self.from_cache = True
            return self
        _require_setfit()
        teacher = SetFitPeer(
            model=self.teacher,
            num_iterations=self.teacher_iterations,
            batch_size=self.batch_size,
            max_length=self.max_length,
            cache_dir=self.cache_dir,
            seed=self.seed,
        ).fit(texts, labels, n_classes)
        assert teacher.path is not None  # a cache dir was given
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-work-", dir=target.parent))
        try:
            names = [str(i) for i in range(n_classes)]
            distilled = self._distil(teacher.path / "body", texts, labels, unlabeled, names, work)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            distilled.save(tmp)
            publish(tmp, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._teacher = SetFitTeacher.load(target, cache_dir=embed_cache)
        return self

    def _distil(
        self,
        teacher_body: Path,
        texts: list[str],
        labels: list[int],
        unlabeled: list[str],
        names: list[str],
        work: Path,
    ) -> Any:
        """setfit's DistillationTrainer, end to end; the student exported like the setfit peer."""
        from datasets import Dataset

        from tinystudent.teachers.setfit import (
            SetFitTeacher,
            SetFitTeacherConfig,
            _import_setfit,
            _save_body,
            _setfit_model,
        )

        setfit = _import_setfit()
        setfit.logging.set_verbosity_warning()  # its distillation module turns on INFO
        # setfit's teacher: the cached tuned body and the same (deterministic) LR on the gold set
        teacher = _setfit_model(str(teacher_body), self.seed)
        teacher.model_body.max_seq_length = self.max_length
        teacher.fit(texts, labels, num_epochs=1, show_progress_bar=False)
        student = _setfit_model(resolve_body(self.student, self.cache_dir), self.seed)
        student.model_body.max_seq_length = self.max_length
        args = setfit.TrainingArguments(
            output_dir=str(work / "trainer"),
            batch_size=self.batch_size,
            num_iterations=self.num_iterations,
            max_steps=self.max_steps,
            max_length=self.max_length,
            seed=self.seed,
            show_progress_bar=False,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
        )
        trainer = setfit.DistillationTrainer(
            teacher_model=teacher,
            student_model=student,
            args=args,
            train_dataset=Dataset.from_dict({"text": unlabeled}),
        )
        trainer.train()
        _save_body(student, work / "body")
        cfg = SetFitTeacherConfig(
            model=self.student,
            num_iterations=self.num_iterations,
            batch_size=self.batch_size,
            max_length=self.max_length,
        )
        info: dict[str, Any] = {"seed": self.seed, "n_train": len(texts), "teacher": self.teacher}
        info.update(n_unlabeled=len(unlabeled), max_steps=self.max_steps)
        return SetFitTeacher.from_setfit_model(student, work / "body", cfg, names, texts, info)


def _require_setfit() -> None:
    """Training needs the library (predicting a cached peer does not): say so up front."""
    import importlib.util

    from tinystudent.teachers.setfit import SETFIT_HINT

    if importlib.util.find_spec("setfit") is None:
        raise ImportError(f"setfit-distilled needs the package 'setfit': {SETFIT_HINT}")
