"""The contract every student kind honours, checked on tiny configs and synthetic text.

No packaged asset is touched: vocabulary students start from random vectors and the
transformer trains its own small WordPiece.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from tests.tiny_students import FILLER, KINDS, LABELS, TINY, synthetic
from tinystudent.errors import RecipeError
from tinystudent.recipe import parse_recipe
from tinystudent.students import STUDENTS, Student, build_student, load_student, student_config
from tinystudent.students.vocab import VocabStudent
from tinystudent.train import TrainConfig, train_student

TEXTS, _ = synthetic(60, seed=1)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine two OpenMP threads that
    wait on each other at every LSTM step make a 2 s test take a minute."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fitted(kind: str, **overrides: object) -> Student:
    torch.manual_seed(0)
    student = build_student(kind, {**TINY[kind], **overrides}, LABELS)
    student.fit_preprocessing(TEXTS)
    return student.eval()


def test_registry_lists_every_kind():
    assert set(STUDENTS) == {"pqrnn", "bilstm", "cnn", "bag", "transformer"}
    for kind, cls in STUDENTS.items():
        assert cls.kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_forward_shapes(kind: str):
    student = fitted(kind)
    texts = ["a good movie", "", "the plot was dull and the actor was boring !"]
    features = student.featurize(texts)
    assert all(t.shape[0] == 3 for t in features.values())
    out = student(**features)
    assert out.logits.shape == (3, 2)
    assert torch.isfinite(out.logits).all()
    for h in out.hidden_states or ():
        assert h.shape[0] == 3 and h.shape[1] == next(iter(features.values())).shape[1]
    probs = student.predict_proba(texts)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert student.predict(texts)[0] in LABELS


@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_a_texts_output(kind: str):
    student = fitted(kind)
    short = "a good movie !"
    long = " ".join(FILLER * 4) + " bad"
    with torch.no_grad():
        alone = student(**student.featurize([short])).logits[0]
        batched = student(**student.featurize([short, long])).logits[0]
        empty_alone = student(**student.featurize([""])).logits[0]
        empty_batched = student(**student.featurize([long, ""])).logits[1]
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=0)
    torch.testing.assert_close(empty_alone, empty_batched, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_featurize_is_deterministic(kind: str):
    student = fitted(kind)
    a, b = student.featurize(TEXTS[:5]), student.featurize(TEXTS[:5])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k])


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind: str, tmp_path):
    student = fitted(kind)
    with torch.no_grad():  # move every weight off its initial value
        for p in student.parameters():
            p.add_(0.01 * torch.randn_like(p))
    student.save(tmp_path, extra={"note": "x"})
    loaded = load_student(tmp_path)
    assert type(loaded) is type(student)
    assert loaded.label_names == LABELS
    assert loaded.num_params() == student.num_params()
    probe = [*TEXTS[:20], "", "words never seen before zzz"]
    np.testing.assert_allclose(loaded.predict_proba(probe), student.predict_proba(probe), atol=1e-6)
    meta = Student.read_meta(tmp_path)
    assert meta["params"] == student.num_params() and meta["note"] == "x"


@pytest.mark.parametrize("kind", KINDS)
def test_num_params_counts_every_weight(kind: str):
    student = fitted(kind)
    n = student.num_params()
    assert n == sum(p.numel() for p in student.parameters()) > 0


@pytest.mark.parametrize("kind", ["bilstm", "cnn", "bag"])
def test_default_vocab_students_stay_under_a_million_params(kind: str):
    # A full 10k-word vocabulary, without building it from 10k distinct words.
    options = {"embeddings": "random"} if kind != "bag" else {"init": "random"}
    student = cast(VocabStudent, build_student(kind, options, LABELS))
    student.load_preprocessing_state({"vocab": {"words": [f"w{i}" for i in range(20_000)]}})
    assert len(student.vocab) == 20_002  # a saved vocabulary is restored as it was
    student = cast(VocabStudent, build_student(kind, options, LABELS))
    student.fit_preprocessing([" ".join(f"w{i}" for i in range(12_000))])
    assert len(student.vocab) == 10_000
    assert 100_000 < student.num_params() < 1_000_000


def test_default_pqrnn_stays_under_a_million_params():
    assert build_student("pqrnn", {}, LABELS).num_params() < 1_000_000


@pytest.mark.parametrize("kind", KINDS)
def test_learns_a_separable_task(kind: str):
    texts, labels = synthetic(200, seed=2)
    probs = np.array([[0.9, 0.1] if y == 0 else [0.1, 0.9] for y in labels], dtype=np.float32)
    torch.manual_seed(0)
    student = build_student(kind, TINY[kind], LABELS)
    cfg = TrainConfig(epochs=12, batch_size=16, lr=1e-2, patience=12, seed=0)
    result = train_student(student, texts, probs, None, cfg)
    test_texts, test_labels = synthetic(100, seed=3)
    acc = float((student.predict_proba(test_texts).argmax(1) == np.array(test_labels)).mean())
    assert acc >= 0.9, (kind, acc, result.history[-1])
    assert result.best_score >= 0.9


@pytest.mark.parametrize(
    ("kind", "options", "field"),
    [
        ("bilstm", {"hidden": 0}, "hidden"),
        ("bilstm", {"embed_dim": 16}, "embed_dim"),  # glove is the default: 50-d only
        ("bilstm", {"embeddings": "word2vec"}, "embeddings"),
        ("cnn", {"kernel_sizes": [3, 0]}, "kernel_sizes"),
        ("cnn", {"kernel_sizes": []}, "kernel_sizes"),
        ("cnn", {"dropout": 1.0}, "dropout"),
        ("bag", {"init": "glove", "embed_dim": 64}, "embed_dim"),
        ("bag", {"vocab_size": 2}, "vocab_size"),
        ("transformer", {"init": "random", "hidden": 30, "heads": 4}, "heads"),
        ("transformer", {"init": "minilm-l3", "layers": 4}, "layers"),
        ("transformer", {"init": "random", "teacher_layers": [0]}, "teacher_layers"),
        ("transformer", {"layers": 2, "teacher_layers": [0, 1, 2]}, "teacher_layers"),
        ("transformer", {"init": "teacher_layers", "tokenizer": "trained"}, "tokenizer"),
        ("pqrnn", {"layers": 0}, "layers"),
    ],
)
def test_config_errors_name_the_field(kind: str, options: dict[str, object], field: str):
    with pytest.raises(ValidationError) as err:
        student_config(kind, options)
    assert field in str(err.value)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_option_is_an_error_naming_it(kind: str):
    with pytest.raises(ValidationError, match="colour"):
        student_config(kind, {"colour": "red"})
    with pytest.raises(RecipeError, match="colour"):
        parse_recipe({"student": {"kind": kind, "colour": "red"}})


def test_recipe_accepts_every_kinds_tiny_options():
    for kind in KINDS:
        recipe = parse_recipe({"student": {"kind": kind, **TINY[kind]}})
        assert recipe.student.options == TINY[kind]
