"""Filters: the leak guard, near-duplicates, quality checks and teacher confidence."""

from __future__ import annotations

import numpy as np
import pytest

from tinystudent.generate.filters import (
    LeakGuard,
    MinHasher,
    NearDupIndex,
    TransferFilter,
    confidence_mask,
    jaccard,
    lsh_bands,
    quality_problem,
    shingles,
)

TEST = [
    "A thoughtful, beautifully shot drama that never quite finds its emotional center.",
    "Loud, dumb and far too long, this sequel squanders a charming cast.",
]


def test_leak_guard_drops_a_test_text_and_near_copies():
    guard = LeakGuard(TEST)
    assert guard.is_leak(TEST[0])
    assert guard.is_leak(
        "a THOUGHTFUL beautifully-shot drama that never quite finds its emotional center"
    )
    # one word changed: still mostly the same 3-shingles
    assert guard.is_leak(
        "A thoughtful, beautifully shot drama that never really finds its emotional center."
    )
    # quoted inside a longer text (containment), and a long fragment of it
    assert guard.is_leak(
        "My verdict: loud, dumb and far too long, this sequel squanders a charming cast. Skip it."
    )
    assert guard.is_leak("dumb and far too long , this sequel squanders a")
    # unrelated texts, and a common short phrase, pass
    assert not guard.is_leak("A warm comedy with a terrific lead performance.")
    assert not guard.is_leak("far too long")


def test_near_dup_index_finds_near_copies_only():
    idx = NearDupIndex(threshold=0.7)
    a = "the quick brown fox jumps over the lazy dog near the river bank today"
    idx.add(a)
    idx.add("a completely different sentence about movies and actors and plots")
    assert idx.find(a + " again") == 0
    assert idx.find("the quick brown fox jumps over the lazy dog near the river") == 0
    assert idx.find("an entirely new review of a new film with new actors") is None
    assert len(idx) == 2


def test_minhash_estimates_jaccard():
    h = MinHasher(num_perm=256, seed=1)
    a = shingles(" ".join(f"w{i}" for i in range(60)))
    b = shingles(" ".join(f"w{i}" for i in range(20, 80)))
    est = float((h.signature(a) == h.signature(b)).mean())
    assert abs(est - jaccard(a, b)) < 0.1


def test_lsh_bands_keep_recall_at_the_threshold():
    for t in (0.5, 0.8, 0.9):
        b, r = lsh_bands(128, t)
        assert b * r == 128
        assert 1 - (1 - t**r) ** b >= 0.99


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "empty"),
        ("12 34 56 !!! ?? 78 90", "not_alphabetic"),
        ("great great great great great great great great", "repetitive"),
        ("assistant: here is a review of the film", "chat_markup"),
        ("<|im_start|>the film", "chat_markup"),
        ("A fine film with a good cast and a clever script.", None),
    ],
)
def test_quality_problems(text, why):
    assert quality_problem(text) == why


def test_prompt_echo_is_dropped():
    echo = shingles('Write one new text that would also be labeled "positive".')
    assert quality_problem("write one new text that would also be labeled positive", echo=echo)
    assert quality_problem("A fine film with a good cast.", echo=echo) is None


def test_transfer_filter_counts_reasons_and_remembers_kept_texts():
    f = TransferFilter(leak=LeakGuard(TEST), known=["an old pool text about films"], min_words=3)
    texts = [
        "a brand new review of a charming little film",  # kept
        "A brand new review of a charming little film!",  # duplicate (normalised)
        "a brand new review of a charming little film indeed",  # near duplicate
        TEST[1],  # leak
        "an old pool text about films",  # duplicate of a known text
        "too short",
        "yet another different take on some other movie",  # kept
    ]
    kept = f(texts)
    assert kept == [texts[0], texts[-1]]
    assert f.dropped == {
        "duplicate": 2,
        "near_duplicate": 1,
        "test_leak": 1,
        "too_short": 1,
    }
    assert f.kept == 2


def test_confidence_mask():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]])
    assert confidence_mask(probs, 0.7).tolist() == [True, False, True]
    with pytest.raises(ValueError):
        confidence_mask(np.ones(3), 0.5)
