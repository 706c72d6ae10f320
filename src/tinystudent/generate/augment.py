"""Cheap augmenters (Tang et al. 2019): new transfer texts from old ones, no LM needed.

The student's bottleneck is the size of the transfer set (docs/architecture.md), and the
teacher labels whatever it is given, so an augmented text need not keep its source's label:
it only has to stay in-domain and be different enough to teach the student something new.
Three edits:
- masking: replace words with a mask token (the teacher's `[MASK]`) or drop them;
- n-gram sampling: keep one random contiguous window of words;
- word swap: replace words with a nearest neighbour in GloVe-50d space (cosine), with the
  table restricted to the corpus vocabulary: neighbours stay in-domain and the search is a
  small matrix product instead of a pass over 400k words.
All are pure Python/numpy and take an explicit `random.Random`, so a seed fixes the output.
Words are whitespace tokens with their punctuation kept attached, so the result still reads
like the source (the teacher's tokenizer sees natural text).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from tinystudent.students.hashing import tokenize

# A whitespace word = leading punctuation, a core, trailing punctuation ("(great!" -> "(",
# "great", "!"): the core is what a swap replaces.
_WORD = re.compile(r"^(\W*)(.*?)(\W*)$", re.UNICODE)
AUGMENTERS = ("swap", "mask", "ngram")  # also the order they are chained in


class Augmenter(Protocol):
    """One edit: a text and a seeded RNG in, a (usually) different text out."""

    name: str

    def __call__(self, text: str, rng: random.Random) -> str: ...


class TokenMasker:
    """Each word with probability `p` becomes `mask_token`, or is dropped when that is None.

    At least one word changes whenever the text has two or more, so the output differs.
    """

    name = "mask"

    def __init__(self, p: float = 0.15, mask_token: str | None = "[MASK]") -> None:
        if not 0 < p <= 1:
            raise ValueError(f"mask probability must be in (0, 1], got {p}")
        self.p = p
        self.mask_token = mask_token

    def __call__(self, text: str, rng: random.Random) -> str:
        words = text.split()
        if len(words) < 2:
            return text
        hit = [rng.random() < self.p for _ in words]
        if not any(hit):
            hit[rng.randrange(len(words))] = True
        if all(hit):  # never erase the whole text
            hit[rng.randrange(len(words))] = False
        if self.mask_token is None:
            return " ".join(w for w, h in zip(words, hit) if not h)
        return " ".join(self.mask_token if h else w for w, h in zip(words, hit))


class NgramSampler:
    """Keep one random window of n contiguous words, n uniform in [min_n, max_n].

    Texts of at most `min_n` words come back unchanged (there is no shorter window to keep).
    """

    name = "ngram"

    def __init__(self, min_n: int = 3, max_n: int | None = None) -> None:
        if min_n < 1 or (max_n is not None and max_n < min_n):
            raise ValueError(f"need 1 <= min_n <= max_n, got min_n={min_n}, max_n={max_n}")
        self.min_n = min_n
        self.max_n = max_n

    def __call__(self, text: str, rng: random.Random) -> str:
        words = text.split()
        if len(words) <= self.min_n:
            return text
        hi = len(words) - 1 if self.max_n is None else min(self.max_n, len(words) - 1)
        n = rng.randint(self.min_n, hi)
        start = rng.randrange(len(words) - n + 1)
        return " ".join(words[start : start + n])


def load_glove(glove_dir: Path | None = None) -> tuple[list[str], np.ndarray]:
    """The GloVe-50d vocabulary and a memory-mapped [400k, 50] matrix (read lazily)."""
    import pyarrow.parquet as pq

    if glove_dir is None:
        from tinystudent.assets import asset_path

        glove_dir = asset_path("glove-50d")
    words = pq.read_table(Path(glove_dir) / "glove_6B_index.parquet").column(0).to_pylist()
    emb = np.load(Path(glove_dir) / "glove_6B_50d_emb.npy", mmap_mode="r")
    return [str(w) for w in words], emb


class GloveSwapper:
    """Swap words for one of their `k` nearest corpus neighbours in GloVe space.

    Built from a corpus: only words that occur in it at least `min_count` times (and are in
    GloVe) take part, both to swap and to swap in; rare words are mostly names and typos, and
    dropping them shrinks the table (RT: 23k -> 14k words), whose all-pairs top-k is the cost
    (~2 s of CPU for 14k words, in chunks of 1024 rows). Bracketed tokens (`[MASK]`) are never
    swapped.
    """

    name = "swap"

    def __init__(
        self,
        words: Sequence[str],
        vectors: np.ndarray,
        p: float = 0.15,
        k: int = 5,
        min_similarity: float = 0.5,
    ) -> None:
        if not 0 < p <= 1:
            raise ValueError(f"swap probability must be in (0, 1], got {p}")
        self.p = p
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.neighbours = _top_neighbours(np.asarray(vectors, np.float32), k, min_similarity)

    @classmethod
    def from_corpus(
        cls,
        texts: Iterable[str],
        glove_dir: Path | None = None,
        p: float = 0.15,
        k: int = 5,
        min_similarity: float = 0.5,
        min_count: int = 2,
    ) -> GloveSwapper:
        """The table restricted to the corpus: words seen >= `min_count` times, in GloVe."""
        counts = Counter(t for text in texts for t in tokenize(text) if t.isalpha())
        vocab = {w for w, c in counts.items() if c >= min_count}
        glove_words, emb = load_glove(glove_dir)
        rows = [(w, i) for i, w in enumerate(glove_words) if w in vocab]
        words = [w for w, _ in rows]
        idx = np.array([i for _, i in rows], dtype=np.int64)
        # `idx` is increasing (GloVe order), so the memmap is read front to back once.
        vectors = np.asarray(emb[idx]) if len(idx) else np.zeros((0, emb.shape[1]), np.float32)
        return cls(words, vectors, p=p, k=k, min_similarity=min_similarity)

    def similar(self, word: str) -> list[str]:
        """The word's neighbours, nearest first (empty for words outside the corpus table)."""
        i = self.index.get(word.lower())
        return [] if i is None else [self.words[j] for j in self.neighbours[i]]

    def __call__(self, text: str, rng: random.Random) -> str:
        words = text.split()
        swappable: list[tuple[int, str, str, str]] = []  # position, lead, core, tail
        for pos, w in enumerate(words):
            m = _WORD.match(w)
            if m is None or "[" in m.group(1):
                continue
            lead, core, tail = m.groups()
            if self.similar(core):
                swappable.append((pos, lead, core, tail))
        if not swappable:
            return text
        chosen = [c for c in swappable if rng.random() < self.p] or [rng.choice(swappable)]
        for pos, lead, core, tail in chosen:
            new = rng.choice(self.similar(core))
            if core[:1].isupper():
                new = new[:1].upper() + new[1:]
            words[pos] = lead + new + tail
        return " ".join(words)


def _top_neighbours(vectors: np.ndarray, k: int, min_sim: float) -> list[list[int]]:
    """For each row, the ids of its `k` most cosine-similar other rows (>= min_sim), nearest
    first; computed in chunks so memory stays at 1024 x n floats."""
    n = len(vectors)
    kk = min(k, n - 1)
    if kk <= 0:
        return [[] for _ in range(n)]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
    out: list[list[int]] = []
    for start in range(0, n, 1024):
        sims = unit[start : start + 1024] @ unit.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # a word is not its own neighbour
        top = np.argpartition(sims, n - kk, axis=1)[:, n - kk :]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1)
        top = np.take_along_axis(top, order, axis=1)
        top_sims = np.take_along_axis(top_sims, order, axis=1)
        for ids, sim in zip(top.tolist(), top_sims.tolist()):
            out.append([i for i, v in zip(ids, sim) if v >= min_sim])
    return out


def build_augmenters(
    names: Sequence[str], corpus: Sequence[str], p: float = 0.15, glove_dir: Path | None = None
) -> list[Augmenter]:
    """Augmenters by name, chained in Tang et al.'s order whatever the order given: word-level
    edits (swap, then mask) before the n-gram window, so a window is cut from the edited text
    and a swap never sees a mask token. GloVe is read only when `swap` is asked for."""
    unknown = [n for n in names if n not in AUGMENTERS]
    if unknown:
        raise ValueError(f"unknown augmenter {unknown[0]!r}; choose from {AUGMENTERS}")
    out: list[Augmenter] = []
    for name in (n for n in AUGMENTERS if n in names):
        if name == "mask":
            out.append(TokenMasker(p=p))
        elif name == "ngram":
            out.append(NgramSampler())
        else:
            out.append(GloveSwapper.from_corpus(corpus, glove_dir=glove_dir, p=p))
    return out


def augment_texts(
    texts: Sequence[str], augmenters: Sequence[Augmenter], per_text: int, seed: int
) -> list[str]:
    """`per_text` variants of each text; each variant applies every augmenter in turn.

    Chaining (as Tang et al. do: per-word edits, then an n-gram window) makes the variants of
    one text differ from each other; duplicates are left to the filters.
    """
    rng = random.Random(seed)
    out = []
    for text in texts:
        for _ in range(per_text):
            new = text
            for aug in augmenters:
                new = aug(new, rng)
            out.append(new)
    return out
