"""`embed-distill`: collect text -> teacher vectors (cached) -> train the student -> evaluate.

Every stage leaves its artifact in the run directory: the teacher's vectors in the cache,
the student in `student/` (its key, the hash of the recipe sections it was trained from, in
`stages.json` as for every kind of run, so a rerun of the same recipe skips training), the
figures in `report.json`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tinystudent.devices import resolve_device
from tinystudent.embeddings.data import collect_texts
from tinystudent.embeddings.evaluate import evaluate_encoder
from tinystudent.embeddings.recipe import EmbedRecipe
from tinystudent.embeddings.student import META, EmbeddingStudent, student_options
from tinystudent.embeddings.teacher import CachedTeacher, SentenceTeacher
from tinystudent.embeddings.train import distill_embedding_student
from tinystudent.io import read_json, write_json
from tinystudent.stages import Stages

log = logging.getLogger(__name__)


def _trained(stages: Stages, student_dir: Path, key: str) -> EmbeddingStudent | None:
    """The saved student of an earlier run of the same recipe, if there is one: recorded in
    `stages.json` like every stage, or (a run directory from before it kept one) named by
    the key in the student's own metadata."""
    meta = student_dir / META
    stages.adopt("student", key, meta, "recipe_hash")
    if not stages.is_done("student", key, meta):
        return None
    stages.mark("student", key, ran=False)
    return EmbeddingStudent.load(student_dir)


def run_embed_distill(recipe: EmbedRecipe, out_dir: str | Path) -> dict[str, Any]:
    """Run (or resume) an embedding distillation; returns the report also written to disk."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    transfer = collect_texts(recipe.data)
    device = resolve_device(recipe.device)  # before any work: `cuda` without one stops here
    teacher = SentenceTeacher.load(recipe.teacher, device)
    reference = CachedTeacher(teacher, recipe.cache_dir or out / "cache", recipe.shard_size)
    targets = reference(transfer.texts)

    key = recipe.training_hash()
    student_dir = out / "student"
    stages = Stages(out)
    model = _trained(stages, student_dir, key)
    train_log: dict[str, Any]
    if model is None:
        options = student_options(recipe.student.kind, recipe.student.options, teacher.cfg.model)
        model, result = distill_embedding_student(
            recipe.student.kind,
            options,
            transfer.texts,
            targets,
            recipe.objective,
            recipe.train,
            device,
        )
        train_log = result.log()
        teacher_info = {"model": teacher.cfg.model, "dim": teacher.dim}
        model.save(student_dir, {"teacher": teacher_info, "training": train_log})
        stages.mark("student", key, ran=True)
    else:
        log.info("%s: already trained for this recipe; skipping training", student_dir)
        train_log = read_json(student_dir / META).get("training", {})

    report: dict[str, Any] = {
        "name": recipe.name,
        "recipe": recipe.model_dump(mode="json"),
        "teacher": {
            "model": teacher.cfg.model,
            "dim": teacher.dim,
            "params": teacher.num_params(),
            "fingerprint": teacher.fingerprint,
        },
        "data": {"train_texts": len(transfer.texts), "per_source": transfer.per_source},
        "student": {
            "kind": model.kind,
            "params": model.num_params(),
            "pooled_dim": model.pooled_dim,
            "projected": model.pooled_dim != model.dim,
            "dir": str(student_dir),
            "training": train_log,
        },
    }
    if recipe.evaluate.enabled and transfer.tasks:
        report["metrics"] = {
            "student": evaluate_encoder(
                lambda texts: model.encode(texts, batch_size=64),
                transfer.tasks,
                reference,
                recipe.evaluate,
            ),
            "teacher": evaluate_encoder(reference, transfer.tasks, reference, recipe.evaluate),
        }
    report["teacher_texts_encoded"] = reference.computed
    report["seconds"] = time.perf_counter() - start
    write_json(out / "report.json", report)
    return report


def summary(report: dict[str, Any]) -> str:
    """A few lines for the terminal: the student's figures beside the teacher's."""
    s = report["student"]
    lines = [
        f"{report['name']}: {s['kind']} student, {s['params']:,} params, "
        f"trained on {report['data']['train_texts']:,} texts "
        f"(teacher {report['teacher']['model']}, {report['teacher']['params']:,} params)"
    ]
    for who, metrics in report.get("metrics", {}).items():
        for task, m in metrics.items():
            figures = ", ".join(
                f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float) and k != "seconds"
            )
            lines.append(f"  {who:<8} {task:<16} {figures}")
    return "\n".join(lines)
