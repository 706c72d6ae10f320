"""The TF-IDF teacher: sklearn's features without sklearn at predict time, saved without pickle,
reachable from a recipe alone or as a member of several teachers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from tinystudent.errors import TinyStudentError
from tinystudent.pipeline import run
from tinystudent.recipe import TEACHER_KINDS, parse_recipe
from tinystudent.teachers.lexical import TfidfTeacher, TfidfTeacherConfig
from tinystudent.teachers.registry import TEACHERS, load_saved

TEXTS = [
    "a warm and funny film",
    "funny, warm, and wise",
    "a dull and tedious mess",
    "tedious, dull, and far too long",
    "the cast is warm and the script funny",
    "a long dull plot and a tedious cast",
]
LABELS = [0, 0, 1, 1, 0, 1]


def fitted(**cfg: object) -> TfidfTeacher:
    teacher = TfidfTeacher(["fresh", "rotten"], TfidfTeacherConfig(**cfg))  # type: ignore[arg-type]
    teacher.fit(TEXTS, LABELS, seed=0)
    return teacher


def test_features_equal_sklearns_tfidf() -> None:
    teacher = fitted()
    ref = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(TEXTS)
    assert list(ref.get_feature_names_out()) == teacher.vocabulary
    probe = [*TEXTS, "warm warm warm and unseen words", ""]
    got = teacher.features(probe).toarray()
    np.testing.assert_allclose(got, ref.transform(probe).toarray(), atol=1e-6)


def test_predicts_the_words_it_learned() -> None:
    teacher = fitted(c=10.0)
    probs = teacher.predict_proba(["warm funny", "dull tedious"])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-6)
    assert probs[0, 0] > 0.5 > probs[1, 0]
    assert teacher.predict_proba([]).shape == (0, 2)


def test_auto_temperature_sharpens_a_soft_head() -> None:
    soft = fitted(c=0.1)
    auto = fitted(c=0.1, temperature="auto")
    assert auto.temperature < 1.0  # a weak head on few texts is too unsure on held-out folds
    assert abs(auto.predict_proba(["warm"])[0, 0] - 0.5) > abs(
        soft.predict_proba(["warm"])[0, 0] - 0.5
    )
    assert auto.fingerprint != soft.fingerprint


def test_save_load_roundtrip_and_corruption(tmp_path: Path) -> None:
    teacher = fitted(temperature=0.5)
    teacher.save(tmp_path / "t")
    assert not list((tmp_path / "t").glob("*.pkl"))
    again = TfidfTeacher.load(tmp_path / "t")
    assert again.fingerprint == teacher.fingerprint
    np.testing.assert_array_equal(again.predict_proba(TEXTS), teacher.predict_proba(TEXTS))
    assert load_saved(tmp_path / "t", tmp_path / "cache").fingerprint == teacher.fingerprint
    vocab = tmp_path / "t" / "vocabulary.txt"
    vocab.write_text("\n".join(teacher.vocabulary[:-1]) + "\n")
    with pytest.raises(TinyStudentError, match="disagree"):
        TfidfTeacher.load(tmp_path / "t")
    with pytest.raises(TinyStudentError, match="no teacher.json"):
        load_saved(tmp_path / "missing", tmp_path / "cache")


def test_fit_refuses_bad_input() -> None:
    with pytest.raises(TinyStudentError):
        TfidfTeacher(["a", "b"]).fit(["x"], [0, 1])
    with pytest.raises(TinyStudentError, match="call fit"):
        TfidfTeacher(["a", "b"]).predict_proba(["x"])


def test_registry_knows_every_recipe_kind() -> None:
    assert set(TEACHERS) == set(TEACHER_KINDS)
    r = parse_recipe({"teacher": {"kind": "tfidf", "ngram_max": 1}})
    assert isinstance(r.teacher, TfidfTeacherConfig) and r.teacher.ngram_max == 1


def test_pipeline_with_a_tfidf_teacher(toy_csv: Path, tmp_path: Path) -> None:
    recipe = parse_recipe(
        {
            "name": "toy-tfidf",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teacher": {"kind": "tfidf", "temperature": "auto"},
            "student": {"kind": "bag", "embed_dim": 16, "init": "random", "head_hidden": 0},
            "train": {"epochs": 2, "batch_size": 32},
        }
    )
    report = run(recipe, tmp_path)
    saved = json.loads((tmp_path / "teacher" / "teacher.json").read_text())
    assert saved["kind"] == "tfidf" and saved["fit"]["n_train"] == 16
    assert report["teacher"]["name"] == "1-2"
    assert report["teacher"]["accuracy"] > 0.5  # the toy classes differ by their words
    assert report["teacher"]["size_bytes"] > 0 and report["teacher"]["throughput"] > 0
    again = run(recipe, tmp_path)
    assert again["stages"]["teacher"] == "skipped" and again["stages"]["label"] == "skipped"
    assert again["teacher"]["accuracy"] == report["teacher"]["accuracy"]


def test_tfidf_as_a_member_of_several_teachers(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe(
        {
            "name": "toy-frozen-tfidf",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teachers": [
                {"kind": "frozen", "model": str(tiny_teacher_dir)},
                {"kind": "tfidf", "temperature": "auto"},
            ],
            "amalgamation": {"method": "average"},
            "student": {"kind": "bag", "embed_dim": 16, "init": "random", "head_hidden": 0},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )
    report = run(recipe, tmp_path)
    assert [t["name"] for t in report["teachers"]] == [f"frozen:{tiny_teacher_dir}", "tfidf:1-2"]
    assert "teacher tfidf:1-2" in report["systems"]
    assert json.loads((tmp_path / "teachers/1/teacher.json").read_text())["kind"] == "tfidf"
