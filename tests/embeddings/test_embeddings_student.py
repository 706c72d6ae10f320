"""The embedding wrapper over every student kind, its encode() contract and save/load."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tinystudent.embeddings.student import (
    EmbeddingStudent,
    load_embedding_student,
    student_options,
)
from tinystudent.errors import TinyStudentError

TEXTS = [
    "the film was great",
    "awful , boring plot",
    "a very charming story and actors",
    "dull",
    "",
    "this movie was wonderful and moving",
]
SMALL: dict[str, dict[str, Any]] = {
    "pqrnn": {"features": 64, "bottleneck": 16, "hidden": 8, "layers": 1},
    "bag": {"embed_dim": 12, "init": "random", "vocab_size": 50},
    "bilstm": {"embed_dim": 8, "embeddings": "random", "hidden": 8, "head_hidden": 8},
    "cnn": {"embed_dim": 8, "embeddings": "random", "filters": 4},
    "transformer": {
        "init": "random",
        "tokenizer": "trained",
        "vocab_size": 60,
        "layers": 1,
        "hidden": 16,
        "heads": 2,
        "intermediate": 32,
    },
}
POOLED = {"pqrnn": 4 * 8, "bag": 12, "transformer": 16}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_every_kind_becomes_an_encoder_of_the_teacher_width(kind):
    torch.manual_seed(0)
    model = EmbeddingStudent.build(kind, SMALL[kind], 24, TEXTS * 3)
    assert isinstance(model.student.head, nn.Identity)
    if kind in POOLED:
        assert model.pooled_dim == POOLED[kind]
    assert isinstance(model.projection, nn.Linear)
    vectors = model.encode(TEXTS, batch_size=4)
    assert vectors.shape == (len(TEXTS), 24) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()


def test_no_projection_when_the_widths_already_match():
    model = EmbeddingStudent.build("bag", SMALL["bag"], 12, TEXTS)
    assert isinstance(model.projection, nn.Identity)
    assert model.num_params() == model.student.num_params()


def test_encode_matches_sentence_transformers_basics():
    torch.manual_seed(0)
    model = EmbeddingStudent.build("pqrnn", SMALL["pqrnn"], 10, TEXTS)
    full = model.encode(TEXTS, batch_size=2)
    # input order is kept whatever the batching (batches are length-sorted inside)
    np.testing.assert_allclose(model.encode(TEXTS[::-1], batch_size=5)[::-1], full, atol=1e-5)
    single = model.encode(TEXTS[0])
    assert single.shape == (10,)
    np.testing.assert_allclose(single, full[0], atol=1e-5)
    unit = model.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert model.encode([]).shape == (0, 10)
    assert model.get_sentence_embedding_dimension() == model.get_embedding_dimension() == 10
    sims = model.similarity(full[:2], full)
    assert sims.shape == (2, len(TEXTS)) and sims[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["pqrnn", "bag", "transformer"])
def test_save_load_round_trip(kind, tmp_path):
    torch.manual_seed(0)
    model = EmbeddingStudent.build(kind, SMALL[kind], 20, TEXTS * 3)
    with torch.no_grad():  # make sure trained-looking weights, not the init, round-trip
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save(tmp_path / "enc", {"note": "kept"})
    assert (tmp_path / "enc" / "embedder.safetensors").is_file()
    loaded = load_embedding_student(tmp_path / "enc")
    assert loaded.kind == kind and loaded.dim == 20
    np.testing.assert_allclose(loaded.encode(TEXTS), model.encode(TEXTS), atol=1e-6)
    assert EmbeddingStudent.read_meta(tmp_path / "enc")["note"] == "kept"


def test_load_refuses_a_directory_that_is_not_an_embedding_student(tmp_path):
    with pytest.raises(TinyStudentError, match="no embedder.json"):
        EmbeddingStudent.load(tmp_path)
    (tmp_path / "embedder.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(TinyStudentError, match="format"):
        EmbeddingStudent.load(tmp_path)


def test_teacher_model_defaults_to_the_embedding_teacher():
    assert student_options("bag", {}, "/some/teacher")["teacher_model"] == "/some/teacher"
    kept = student_options("transformer", {"teacher_model": "x"}, "/some/teacher")
    assert kept["teacher_model"] == "x"
    assert "teacher_model" not in student_options("pqrnn", {}, "/some/teacher")


def test_transformer_cut_from_the_teacher_needs_no_projection(tiny_teacher_dir):
    options = {"init": "teacher_layers", "teacher_model": str(tiny_teacher_dir), "layers": 1}
    model = EmbeddingStudent.build("transformer", options, 32, TEXTS)
    assert isinstance(model.projection, nn.Identity)
    assert model.encode(TEXTS).shape == (len(TEXTS), 32)


def test_projection_warm_start_recovers_a_linear_read_out():
    from tinystudent.embeddings.train import fit_projection

    torch.manual_seed(0)
    texts = [
        f"{a} {b}" for a in ["great", "dull", "fun", "messy"] for b in ["film", "plot", "cast"]
    ]
    model = EmbeddingStudent.build("bag", SMALL["bag"], 5, texts).eval()  # no dropout
    with torch.no_grad():
        pooled = model.student(**model.featurize(texts)).logits
    a, b = torch.randn(pooled.shape[1], 5), torch.randn(5)
    targets = (pooled @ a + b).numpy()
    assert fit_projection(model, texts, targets, ridge=1e-9)
    np.testing.assert_allclose(model.encode(texts), targets, atol=1e-3)
    same_width = EmbeddingStudent.build("bag", SMALL["bag"], 12, texts)
    assert not fit_projection(same_width, texts, np.zeros((len(texts), 12), np.float32))
