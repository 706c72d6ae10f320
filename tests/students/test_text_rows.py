"""The pQRNN's text cache gives exactly HashProjection.batch's arrays, whatever it holds."""

from __future__ import annotations

import numpy as np
import pytest

from tinystudent.inference.preprocess import HashProjection
from tinystudent.students import build_student
from tinystudent.students.text_rows import TextRows

TEXTS = ["A good movie!", "", "dull , dull , dull", "word " * 80, "A good movie!", "new words"]


@pytest.mark.parametrize("max_texts", [1, 3, 1000])
@pytest.mark.parametrize(("max_tokens", "lowercase"), [(64, True), (5, False)])
def test_text_rows_match_the_projection_batch_bit_for_bit(
    max_texts: int, max_tokens: int, lowercase: bool
) -> None:
    proj = HashProjection(64, seed=3)
    rows = TextRows(HashProjection(64, seed=3), max_texts, max_tokens, lowercase)
    for batch in (TEXTS, TEXTS[2:], ["", ""], TEXTS[::-1], ["only one"]):  # repeats, overflow
        want = proj.batch(batch, max_tokens, lowercase)
        got = rows.batch(batch)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(g, w)
        assert len(rows._texts) <= max_texts and len(rows._tokens) <= max_texts


def test_the_student_featurizes_the_same_with_and_without_the_cache() -> None:
    cfg = {"features": 64, "bottleneck": 16, "hidden": 8, "max_tokens": 7}
    cached = build_student("pqrnn", cfg, ["a", "b"])
    plain = build_student("pqrnn", {**cfg, "text_cache": 0}, ["a", "b"])
    assert cached.text_rows is not None and plain.text_rows is None
    for _ in range(2):  # the second call is served from the cache
        a, b = cached.featurize(TEXTS), plain.featurize(TEXTS)
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in ("projection", "mask"))


@pytest.mark.parametrize(("max_tokens", "lowercase"), [(64, True), (5, False)])
def test_the_packed_form_scatters_back_to_the_projection_batch_bit_for_bit(
    max_tokens: int, lowercase: bool
) -> None:
    proj = HashProjection(64, seed=3)
    rows = TextRows(HashProjection(64, seed=3), 1000, max_tokens, lowercase)
    for batch in (TEXTS, ["", ""], TEXTS[::-1], ["only one"]):
        want_proj, want_mask = proj.batch(batch, max_tokens, lowercase)
        got = rows.packed(batch)
        assert got is not None
        tokens, token_rows = got["tokens"], got["token_rows"]
        assert tokens.dtype == np.float32 and len(np.unique(tokens, axis=0)) == len(tokens)
        assert got["starts"][0] == 0 and got["starts"][-1] == len(token_rows)
        flat = np.zeros((want_mask.size, tokens.shape[1]), np.float32)
        flat[got["positions"]] = tokens[token_rows]
        assert np.array_equal(flat.reshape(want_proj.shape), want_proj)
        assert np.array_equal(got["mask"], want_mask)
        # texts one after another: text b's positions are its first real slots, in order
        for b, (lo, hi) in enumerate(zip(got["starts"][:-1], got["starts"][1:])):
            assert np.array_equal(
                got["positions"][lo:hi], b * want_mask.shape[1] + np.arange(hi - lo)
            )


def test_an_empty_batch_or_one_larger_than_the_memo_has_no_packed_form() -> None:
    rows = TextRows(HashProjection(64, seed=3), 2, 64, True)
    assert rows.packed(["a b", "c d", "e f"]) is None
    assert rows.packed([]) is None
    student = build_student("pqrnn", {"features": 64, "kernel": "fused"}, ["a", "b"]).train()
    feats = student.featurize([])  # the padded form, which the forward takes at batch 0
    assert set(feats) == {"projection", "mask"}
    assert student(**feats).logits.shape == (0, 2)
