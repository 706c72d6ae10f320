"""The vocabulary students' shared pieces: vocabulary, ids, pooling, starting vectors."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import torch

from tinystudent.students import EmbeddingBag, build_student, load_student
from tinystudent.students.bilstm import reverse_padded
from tinystudent.students.embeddings import pca, teacher_init
from tinystudent.students.vocab import (
    PAD_ID,
    UNK_ID,
    Vocab,
    VocabStudent,
    masked_max,
    masked_mean,
    texts_to_ids,
)

LABELS = ["neg", "pos"]


def test_vocab_orders_by_count_then_alphabet_and_caps_size():
    v = Vocab.build(["b a a c", "a b d", "e"], max_size=5)
    assert v.itos == ["<pad>", "<unk>", "a", "b", "c"]  # a:3, b:2, then c/d/e tied: c
    assert Vocab.build(["b a a c", "a b d"], max_size=100, min_count=2).itos[2:] == ["a", "b"]
    assert len(Vocab.build(["x y z"], max_size=3)) == 3


def test_vocab_lowercases_with_the_shared_tokenizer_and_round_trips_its_state():
    v = Vocab.build(["Great film!", "GREAT"], max_size=100)
    assert v.stoi["great"] == 2 and "!" in v.stoi and "Great" not in v.stoi
    again = Vocab.from_state(v.state())
    assert again.itos == v.itos
    assert v.encode(["great", "unseen"]) == [2, UNK_ID]
    assert v.state() == {"words": v.itos[2:]}


def test_texts_to_ids_pads_masks_truncates_and_keeps_empty_texts():
    v = Vocab(["good", "movie"])
    ids, mask = texts_to_ids(["good movie zzz", "", "movie " * 10], v, max_tokens=4)
    assert ids.dtype == torch.long and mask.dtype == torch.float32
    assert ids.tolist() == [[2, 3, UNK_ID, PAD_ID], [UNK_ID, PAD_ID, PAD_ID, PAD_ID], [3] * 4]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    ids, mask = texts_to_ids([], v, max_tokens=4)
    assert ids.shape == (0, 1)


def test_masked_pooling_ignores_padding_values():
    h = torch.tensor([[[1.0], [3.0], [100.0]], [[-5.0], [-7.0], [-1.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert masked_mean(h, mask).flatten().tolist() == [2.0, -5.0]
    assert masked_max(h, mask).flatten().tolist() == [3.0, -5.0]


def test_reverse_padded_reverses_within_each_length_and_is_its_own_inverse():
    x = torch.arange(8.0).view(2, 4, 1)
    lengths = torch.tensor([3, 1])
    r = reverse_padded(x, lengths)
    assert r.flatten().tolist() == [2.0, 1.0, 0.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert torch.equal(reverse_padded(r, lengths), x)


def test_cnn_handles_texts_shorter_than_its_widest_kernel():
    student = build_student(
        "cnn", {"embeddings": "random", "embed_dim": 8, "filters": 4, "kernel_sizes": [5]}, LABELS
    )
    student.fit_preprocessing(["ok fine", "a b c d e f g"])
    out = student.eval()(**student.featurize(["ok", ""]))
    assert torch.isfinite(out.logits).all()


def test_frozen_embeddings_do_not_move_in_training():
    from tinystudent.train import TrainConfig, train_student

    texts = ["good film", "bad film", "good plot", "bad plot"] * 10
    probs = np.array([[0.1, 0.9], [0.9, 0.1]] * 20, dtype=np.float32)
    options = {"init": "random", "embed_dim": 8, "freeze_embeddings": True}
    student = cast(EmbeddingBag, build_student("bag", options, LABELS))
    fitted: dict[str, torch.Tensor] = {}
    fit = student.fit_preprocessing

    def fit_and_snapshot(texts: list[str]) -> None:  # the trainer fits the vocabulary itself
        fit(texts)
        fitted["embedding"] = student.embedding.weight.detach().clone()
        fitted["head"] = next(student.head.parameters()).detach().clone()

    student.fit_preprocessing = fit_and_snapshot  # type: ignore[method-assign]
    train_student(student, texts, probs, None, TrainConfig(epochs=3, batch_size=8))
    assert not student.embedding.weight.requires_grad
    assert torch.equal(student.embedding.weight, fitted["embedding"])
    assert not torch.equal(next(student.head.parameters()), fitted["head"])  # the rest did train


def test_pca_orders_axes_by_variance_and_zero_pads_past_the_rank():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1, 0.01])
    y = pca(x, 4)
    assert y.shape == (200, 4) and y.dtype == np.float32
    var = y.var(0)
    assert np.all(np.diff(var) < 0)
    np.testing.assert_allclose(np.corrcoef(y.T) - np.eye(4), 0, atol=1e-5)
    small = pca(x[:3], 5)  # 3 points span at most 2 centred axes
    assert small.shape == (3, 5) and not small[:, 3:].any()


def test_teacher_init_leaves_specials_at_the_mean(tiny_teacher_dir):
    words = ["<pad>", "<unk>", "great", "awful", "film", "the"]
    vectors = teacher_init(words, dim=3, model=str(tiny_teacher_dir), batch_size=2)
    assert vectors.shape == (6, 3)
    assert not vectors[:2].any()
    np.testing.assert_allclose(vectors[2:].mean(0), 0, atol=1e-5)  # centred
    assert np.abs(vectors[2:]).sum() > 0


def test_bag_from_a_local_teacher_starts_from_its_word_vectors(tiny_teacher_dir, tmp_path):
    options = {"init": "teacher", "teacher_model": str(tiny_teacher_dir), "embed_dim": 4}
    student = cast(EmbeddingBag, build_student("bag", options, LABELS))
    torch.manual_seed(0)
    texts = ["great film", "awful film", "the great plot", "boring story"]
    student.fit_preprocessing(texts)
    w = student.embedding.weight.detach().numpy()
    expected = teacher_init(student.vocab.words, 4, str(tiny_teacher_dir))
    np.testing.assert_allclose(w, expected, atol=1e-5)
    student.save(tmp_path)
    loaded = load_student(tmp_path)  # no teacher is read on load
    np.testing.assert_allclose(loaded.predict_proba(texts), student.predict_proba(texts), atol=1e-6)


@pytest.mark.parametrize("kind", ["bilstm", "cnn", "bag"])
def test_unfitted_vocab_student_maps_every_word_to_unk(kind: str):
    options = {"embeddings": "random"} if kind != "bag" else {"init": "random"}
    student = cast(VocabStudent, build_student(kind, options, LABELS))
    ids = student.featurize(["any words at all"])["ids"]
    assert ids.tolist() == [[UNK_ID] * 4]
