"""Teacher, cache, training and the whole `embed-distill` run, offline on the tiny random BERT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.conftest import toy_rows
from tinystudent.cli import main
from tinystudent.embeddings import (
    CachedTeacher,
    EmbedTrainConfig,
    ObjectiveConfig,
    SentenceTeacher,
    SentenceTeacherConfig,
    distill_embedding_student,
    load_embedding_student,
    parse_embed_recipe,
    run_embed_distill,
)
from tinystudent.embeddings.student import EmbeddingStudent

PQRNN = {"kind": "pqrnn", "features": 64, "bottleneck": 16, "hidden": 16, "layers": 1}


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return SentenceTeacher.load(SentenceTeacherConfig(model=str(tiny_teacher_dir), batch_size=16))


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    lines = [text for text, _ in toy_rows(200, seed=7)]
    path.write_text("\n".join(lines[:100] + ["", "   "] + lines[100:]) + "\n", encoding="utf-8")
    return path


def test_teacher_encodes_and_fingerprints(teacher):
    vectors = teacher.encode(["the film was great", "awful plot"])
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32
    assert teacher.dim == 32
    assert teacher.fingerprint == teacher.fingerprint and len(teacher.fingerprint) == 32
    assert teacher.encode([]).shape == (0, 32)


def test_cache_encodes_each_text_once(teacher, tmp_path):
    texts = ["the film was great", "awful plot", "a boring story"]
    cached = CachedTeacher(teacher, tmp_path, shard_size=2)
    first = cached(texts)
    again = CachedTeacher(teacher, tmp_path)(texts[::-1])  # a new process would read the shards
    np.testing.assert_allclose(again[::-1], first, atol=1e-6)
    np.testing.assert_allclose(first, teacher.encode(texts), atol=1e-5)
    assert cached.computed == 3 and len(list(tmp_path.rglob("shard-*.safetensors"))) == 2


def test_training_moves_the_student_towards_the_teacher(teacher):
    texts = [t for t, _ in toy_rows(160, seed=3)]
    targets = teacher.encode(texts)
    cfg = EmbedTrainConfig(
        epochs=6, batch_size=16, lr=1e-2, val_fraction=0.2, patience=6, init_projection=False
    )
    model, result = distill_embedding_student(
        "pqrnn",
        {k: v for k, v in PQRNN.items() if k != "kind"},
        texts,
        targets,
        ObjectiveConfig(contrastive=0.1, temperature=0.1),
        cfg,
    )
    hist = result.history
    assert [int(r["epoch"]) for r in hist] == list(range(1, 7))
    for part in ("mse", "cosine", "contrastive"):
        assert hist[-1][part] < hist[0][part], part
    assert result.best_score == max(r["val_cosine"] for r in hist)
    assert result.best_score > 0.5
    assert result.train_texts == 128 and result.val_texts == 32


def recipe_dict(toy_csv, texts_file, tiny_teacher_dir, cache_dir):
    return {
        "name": "tiny-embed",
        "teacher": {"model": str(tiny_teacher_dir), "batch_size": 32},
        "data": {
            "sources": [
                {"dataset": str(toy_csv), "test_size": 40},
                {"file": str(texts_file), "max_texts": 150},
            ],
            "max_texts": 300,
        },
        "student": PQRNN,
        "objective": {"temperature": 0.1},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01},
        "evaluate": {"geometry_texts": 30, "k": 5, "max_train": 100},
        "cache_dir": str(cache_dir),
    }


def test_embed_distill_end_to_end_and_resume(toy_csv, texts_file, tiny_teacher_dir, tmp_path):
    data = recipe_dict(toy_csv, texts_file, tiny_teacher_dir, tmp_path / "cache")
    recipe = parse_embed_recipe(data)
    report = run_embed_distill(recipe, tmp_path / "run")
    assert (tmp_path / "run" / "report.json").is_file()
    assert (tmp_path / "run" / "student" / "embedder.safetensors").is_file()
    assert report["data"]["per_source"][str(texts_file)] == 150
    assert json.loads((tmp_path / "run" / "report.json").read_text())["name"] == "tiny-embed"
    metrics = report["metrics"]
    task = next(iter(metrics["student"]))
    assert metrics["teacher"][task]["spearman"] == pytest.approx(1.0)
    assert metrics["teacher"][task]["recall_at_5"] == pytest.approx(1.0)
    assert -1.0 <= metrics["student"][task]["spearman"] <= 1.0
    assert 0.0 <= metrics["student"]["mean"]["lr_accuracy"] <= 1.0
    encoded = report["teacher_texts_encoded"]
    assert encoded > 0

    model = load_embedding_student(tmp_path / "run" / "student")
    assert model.encode(["the film was great"]).shape == (1, 32)

    # A rerun of the same recipe trains nothing and encodes nothing.
    mtime = (tmp_path / "run" / "student" / "embedder.safetensors").stat().st_mtime_ns
    again = run_embed_distill(recipe, tmp_path / "run")
    assert again["teacher_texts_encoded"] == 0
    assert (tmp_path / "run" / "student" / "embedder.safetensors").stat().st_mtime_ns == mtime
    assert again["metrics"]["student"] == metrics["student"]
    # One resume scheme for every kind of run: the student's key is in stages.json.
    stages = tmp_path / "run" / "stages.json"
    assert json.loads(stages.read_text()) == {"student": recipe.training_hash()}
    meta = tmp_path / "run" / "student" / "embedder.json"
    assert "recipe_hash" not in json.loads(meta.read_text())  # the key lives in stages.json
    # A run directory from before stages.json: its student's metadata named the key.
    stages.unlink()
    meta.write_text(
        json.dumps({**json.loads(meta.read_text()), "recipe_hash": recipe.training_hash()})
    )
    run_embed_distill(recipe, tmp_path / "run")
    assert (tmp_path / "run" / "student" / "embedder.safetensors").stat().st_mtime_ns == mtime
    assert stages.is_file()

    # A changed training section retrains (and still reuses the teacher's cache).
    data["train"]["epochs"] = 1
    third = run_embed_distill(parse_embed_recipe(data), tmp_path / "run")
    assert third["teacher_texts_encoded"] == 0
    assert len(third["student"]["training"]["history"]) == 1


def test_cli_verb_runs_a_recipe_file(toy_csv, texts_file, tiny_teacher_dir, tmp_path, capsys):
    data = recipe_dict(toy_csv, texts_file, tiny_teacher_dir, tmp_path / "cache")
    data["evaluate"] = {"enabled": False}
    data["train"]["epochs"] = 1
    path = tmp_path / "embed.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["embed-distill", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "pqrnn student" in capsys.readouterr().out
    assert isinstance(EmbeddingStudent.load(tmp_path / "out" / "student"), EmbeddingStudent)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n", encoding="utf-8")
    assert main(["embed-distill", str(bad)]) == 2
    assert "train.epochz: unknown key" in capsys.readouterr().err
