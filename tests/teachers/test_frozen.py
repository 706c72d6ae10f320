"""The frozen-encoder teacher on a tiny random BERT: learns, caches embeddings, saves, reloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import toy_rows
from tinystudent.errors import TinyStudentError
from tinystudent.label import EmbeddingCache, embed_texts, label_texts
from tinystudent.teachers.frozen import (
    FrozenEncoderTeacher,
    FrozenTeacherConfig,
    SentenceEncoder,
    fit_temperature,
)

LABELS = ["neg", "pos"]


def _data(n: int, seed: int) -> tuple[list[str], list[int]]:
    rows = toy_rows(n, seed=seed)
    return [t for t, _ in rows], [LABELS.index(y) for _, y in rows]


def _teacher(model_dir: Path, cache: Path | None, **cfg: object) -> FrozenEncoderTeacher:
    config = FrozenTeacherConfig(model=str(model_dir), **cfg)  # type: ignore[arg-type]
    return FrozenEncoderTeacher.from_config(LABELS, config, cache)


def test_learns_the_toy_task(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    teacher = _teacher(tiny_teacher_dir, tmp_path)
    texts, labels = _data(96, seed=0)
    info = teacher.fit(texts, labels, seed=0)
    assert info["C"] > 0 and info["temperature"] == 1.0
    test_texts, test_labels = _data(60, seed=1)
    probs = teacher.predict_proba(test_texts)
    assert probs.shape == (60, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == np.array(test_labels)).mean() >= 0.8


def test_embeddings_are_cached_once_per_encoder(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    texts, labels = _data(40, seed=0)
    first = _teacher(tiny_teacher_dir, tmp_path)
    first.fit(texts, labels)
    first.predict_proba(texts[:30])
    # A new head (another seed, another k) on the same encoder: no text is encoded again.
    second = _teacher(tiny_teacher_dir, tmp_path)
    calls: list[int] = []
    encode = second.encoder.encode
    second.encoder.encode = lambda batch: calls.append(len(batch)) or encode(batch)  # type: ignore[method-assign]
    second.fit(texts[:20], labels[:20], seed=1)
    second.predict_proba(texts)
    assert calls == []
    _, stats = embed_texts(second.encoder, texts, tmp_path)
    assert stats.computed == 0 and stats.hits == len(texts)
    # The cached rows are exactly what the encoder computes (the cache changes nothing).
    cache = EmbeddingCache(tmp_path, second.encoder.fingerprint, second.encoder.dim)
    np.testing.assert_allclose(
        np.stack([cache.get(t) for t in texts[:5]]), encode(texts[:5]), atol=1e-6
    )


def test_uncached_prediction_matches_cached(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    teacher = _teacher(tiny_teacher_dir, tmp_path)
    texts, labels = _data(40, seed=0)
    teacher.fit(texts, labels)
    np.testing.assert_allclose(
        teacher.predict_proba(texts), teacher.predict_proba(texts, use_cache=False), atol=1e-5
    )
    # Batching and order do not change an embedding.
    enc = teacher.encoder
    np.testing.assert_allclose(enc.encode(texts[::-1])[::-1], enc.encode(texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(enc.encode(texts), axis=1), 1.0, atol=1e-5)


def test_save_load_identical(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    teacher = _teacher(tiny_teacher_dir, tmp_path / "cache", temperature="auto")
    texts, labels = _data(64, seed=0)
    teacher.fit(texts, labels)
    teacher.save(tmp_path / "t")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "head.safetensors",
        "teacher.json",
    ]
    again = FrozenEncoderTeacher.load(tmp_path / "t", cache_dir=tmp_path / "cache")
    assert again.fingerprint == teacher.fingerprint
    assert again.temperature == teacher.temperature
    np.testing.assert_array_equal(again.predict_proba(texts), teacher.predict_proba(texts))
    # Soft labels are keyed by the fingerprint: the reloaded teacher reuses them.
    label_texts(teacher, texts, tmp_path / "labels")
    _, stats = label_texts(again, texts, tmp_path / "labels")
    assert stats.computed == 0


def test_fingerprint_follows_the_head(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    texts, labels = _data(64, seed=0)
    a = _teacher(tiny_teacher_dir, tmp_path)
    a.fit(texts, labels)
    b = _teacher(tiny_teacher_dir, tmp_path, c=0.01)
    b.fit(texts, labels)
    assert a.encoder.fingerprint == b.encoder.fingerprint
    assert a.fingerprint != b.fingerprint
    longer = _teacher(tiny_teacher_dir, tmp_path, max_length=16)
    assert longer.encoder.fingerprint != a.encoder.fingerprint


def test_load_refuses_another_encoder(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    teacher = _teacher(tiny_teacher_dir, None)
    teacher.fit(*_data(32, seed=0))
    teacher.save(tmp_path / "t")
    other = SentenceEncoder.from_pretrained(str(tiny_teacher_dir), max_length=12)
    with pytest.raises(TinyStudentError, match="differs"):
        FrozenEncoderTeacher.load(tmp_path / "t", encoder=other)


def test_temperature_sharpens_soft_correct_logits() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    # Logits pointing the right way 90% of the time but at a tiny scale: calibration sharpens.
    sign = np.where(rng.random(400) < 0.9, 1.0, -1.0)
    z = np.stack([-sign * (2 * y - 1), sign * (2 * y - 1)], axis=1) * 0.2
    t = fit_temperature(z, y)
    assert 0.05 <= t < 0.5


def test_recipe_teacher_kind() -> None:
    from tinystudent.errors import RecipeError
    from tinystudent.recipe import Recipe, parse_recipe

    r = parse_recipe({"teacher": {"kind": "frozen", "model": "mpnet-base", "temperature": "auto"}})
    assert isinstance(r.teacher, FrozenTeacherConfig) and r.teacher.model == "mpnet-base"
    # A recipe without `kind` (or with kind: finetune) keeps its hash: old runs still resume.
    assert parse_recipe({"teacher": {"kind": "finetune"}}).section_hash("teacher") == (
        Recipe().section_hash("teacher")
    )
    with pytest.raises(RecipeError, match="unknown teacher kind 'gpt'"):
        parse_recipe({"teacher": {"kind": "gpt"}})
    with pytest.raises(RecipeError, match="teacher.epochs: unknown key"):
        parse_recipe({"teacher": {"kind": "frozen", "epochs": 3}})


@pytest.mark.integration
@pytest.mark.parametrize("model", ["minilm-l6", "mpnet-base"])
def test_real_encoders_load(model: str, tmp_path: Path) -> None:
    from tinystudent.errors import AssetMissingError

    try:
        teacher = FrozenEncoderTeacher.from_config(LABELS, FrozenTeacherConfig(model=model))
    except AssetMissingError as e:
        pytest.skip(f"{model} is not available here: {e}")
    texts, labels = _data(16, seed=0)
    teacher.fit(texts, labels)
    assert teacher.predict_proba(texts).shape == (16, 2)


def test_pipeline_with_a_frozen_teacher(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    from tinystudent.pipeline import run
    from tinystudent.recipe import parse_recipe

    recipe = parse_recipe(
        {
            "name": "toy-frozen",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teacher": {"kind": "frozen", "model": str(tiny_teacher_dir), "c": 1.0},
            "student": {"kind": "pqrnn", "hidden": 8, "bottleneck": 16, "features": 64},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )
    report = run(recipe, tmp_path)
    assert (tmp_path / "teacher" / "head.safetensors").is_file()
    assert report["teacher"]["size_bytes"] > 4 * report["teacher"]["params"] * 0.9
    assert list((tmp_path / "cache" / "embeddings").rglob("shard-*.safetensors"))
    again = run(recipe, tmp_path)
    assert again["stages"]["teacher"] == "skipped"
    assert again["labeling"]["transfer"]["computed"] == 0
    assert again["teacher"]["accuracy"] == report["teacher"]["accuracy"]
