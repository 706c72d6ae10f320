"""Filters between a generator and the teacher: what is kept must be new, clean and not a leak.

- Leak guard (on by default): a generated or augmented text too close to a held-out test text
  would let the student see the test set through the teacher's label. The test split is small
  and fixed, so it is checked EXACTLY: normalised equality, Jaccard over word 3-shingles, and
  containment either way (an LM that memorised a review may quote it inside a longer text).
- Near-duplicates: a pretrained LM repeats itself and augmenters can collide; duplicates add
  cost, not information. The set grows with every accepted text, so candidates come from a
  numpy MinHash LSH index and are then verified with the exact Jaccard of the shingle sets.
- Length and language quality: word count bounds, share of alphabetic tokens, repeated word
  trigrams (LM loops), chat-role markers and prompt echo.
- Teacher confidence (optional, applied after labeling): keep rows whose max prob is high.
Words come from the students' `tokenize`, so "near" means near for what a student sees.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable

import numpy as np

from tinystudent.students.hashing import tokenize

_PRIME = (1 << 31) - 1  # Mersenne prime: a, b, x < p keep a*x + b below 2^63 in uint64
_WORDS = re.compile(r"\w+", re.UNICODE)
_CHAT_ROLE = re.compile(r"(<\|im_(start|end)\|>|\b(user|assistant|system)\s*:)", re.IGNORECASE)


def words(text: str) -> list[str]:
    """Lowercased word tokens, punctuation dropped (the `\\w+` tokens of `tokenize`)."""
    return _WORDS.findall(text.lower())


def normalize(text: str) -> str:
    """The form exact-match compares: lowercased words joined by single spaces."""
    return " ".join(words(text))


def shingles_of(w: list[str], n: int = 3) -> frozenset[int]:
    """Stable 32-bit hashes of word n-grams (one shingle of all words for shorter texts)."""
    if not w:
        return frozenset()
    if len(w) < n:
        return frozenset([zlib.crc32(" ".join(w).encode("utf-8"))])
    joined = [" ".join(w[i : i + n]) for i in range(len(w) - n + 1)]
    return frozenset(zlib.crc32(g.encode("utf-8")) for g in joined)


def shingles(text: str, n: int = 3) -> frozenset[int]:
    return shingles_of(words(text), n)


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


# --------------------------------------------------------------------------- leak guard


class LeakGuard:
    """Is a text too close to any held-out test text? Exact, via an inverted shingle index.

    Leak when: normalised text equals a test text; or Jaccard >= `threshold`; or at least
    `containment` of one side's shingles lie in the other (the contained side needs
    `min_shingles` shingles, so a common 3-word phrase is not a leak).
    """

    def __init__(
        self,
        test_texts: Iterable[str],
        threshold: float = 0.5,
        containment: float = 0.8,
        min_shingles: int = 3,
    ) -> None:
        self.threshold = threshold
        self.containment = containment
        self.min_shingles = min_shingles
        self.exact: set[str] = set()
        self.sizes: list[int] = []
        self.postings: dict[int, list[int]] = defaultdict(list)
        for text in test_texts:
            self.exact.add(normalize(text))
            doc = len(self.sizes)
            sh = shingles(text)
            self.sizes.append(len(sh))
            for s in sh:
                self.postings[s].append(doc)

    def __len__(self) -> int:
        return len(self.sizes)

    def closest(self, text: str, sh: frozenset[int] | None = None) -> tuple[float, float]:
        """(best Jaccard, best containment either way) against the test texts."""
        sh = shingles(text) if sh is None else sh
        hits: Counter[int] = Counter()
        for s in sh:
            hits.update(self.postings.get(s, ()))
        best_j = best_c = 0.0
        for doc, h in hits.items():
            size = self.sizes[doc]
            best_j = max(best_j, h / (len(sh) + size - h))
            if len(sh) >= self.min_shingles:
                best_c = max(best_c, h / len(sh))
            if size >= self.min_shingles:
                best_c = max(best_c, h / size)
        return best_j, best_c

    def is_leak(
        self, text: str, w: list[str] | None = None, sh: frozenset[int] | None = None
    ) -> bool:
        """`w`, `sh`: the text's `words` and shingles, when the caller has them already."""
        w = words(text) if w is None else w
        if " ".join(w) in self.exact:
            return True
        j, c = self.closest(text, shingles_of(w) if sh is None else sh)
        return j >= self.threshold or c >= self.containment


# --------------------------------------------------------------------------- near duplicates


class MinHasher:
    """`num_perm` universal hashes (a*x + b mod p, p = 2^31 - 1) of shingles, vectorised.

    a, b and x must all lie in [0, p) for the family to be universal; with a larger x the
    product barely wraps, the hashes stay nearly linear in x, and every permutation picks the
    same minimum (estimates of Jaccard come out far too low)."""

    def __init__(self, num_perm: int = 128, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(1, _PRIME, num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _PRIME, num_perm, dtype=np.uint64)

    def signature(self, sh: frozenset[int]) -> np.ndarray:
        if not sh:
            return np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        x = np.fromiter(sh, dtype=np.uint64, count=len(sh)) % np.uint64(_PRIME)
        return ((np.outer(x, self.a) + self.b) % np.uint64(_PRIME)).min(axis=0)


def lsh_bands(num_perm: int, threshold: float, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows): the most selective banding that still finds a pair at `threshold` with
    probability >= `recall` (1 - (1 - t^r)^b); exact verification removes false candidates."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            best = (bands, rows)
    return best


class NearDupIndex:
    """Texts seen so far; `find` returns one whose shingle Jaccard >= threshold, if any."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, seed: int = 0) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.hasher = MinHasher(num_perm, seed)
        self.bands, self.rows = lsh_bands(num_perm, threshold)
        self.buckets: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(self.bands)]
        self.sets: list[frozenset[int]] = []

    def __len__(self) -> int:
        return len(self.sets)

    def _keys(self, sh: frozenset[int]) -> list[bytes]:
        sig = self.hasher.signature(sh).reshape(self.bands, self.rows)
        return [row.tobytes() for row in sig]

    def find(self, text: str, sh: frozenset[int] | None = None) -> int | None:
        sh = shingles(text) if sh is None else sh
        seen: set[int] = set()
        for band, key in zip(self.buckets, self._keys(sh)):
            for doc in band.get(key, ()):
                if doc not in seen:
                    seen.add(doc)
                    if jaccard(sh, self.sets[doc]) >= self.threshold:
                        return doc
        return None

    def add(self, text: str, sh: frozenset[int] | None = None) -> int:
        sh = shingles(text) if sh is None else sh
        doc = len(self.sets)
        self.sets.append(sh)
        for band, key in zip(self.buckets, self._keys(sh)):
            band[key].append(doc)
        return doc


# --------------------------------------------------------------------------- quality


def repeated_trigram_ratio(toks: list[str]) -> float:
    """Share of word trigrams that repeat an earlier one: high for LM loops ("a a a a")."""
    if len(toks) < 4:
        return 0.0
    grams = [tuple(toks[i : i + 3]) for i in range(len(toks) - 2)]
    return 1 - len(set(grams)) / len(grams)


def quality_problem(
    text: str, min_alpha: float = 0.6, max_repeat: float = 0.3, echo: frozenset[int] = frozenset()
) -> str | None:
    """Why a text does not read like language (None when it does)."""
    toks = tokenize(text)
    if not toks:
        return "empty"
    if _CHAT_ROLE.search(text):
        return "chat_markup"
    alpha = sum(1 for t in toks if any(c.isalpha() for c in t)) / len(toks)
    if alpha < min_alpha:
        return "not_alphabetic"
    if repeated_trigram_ratio(toks) > max_repeat:
        return "repetitive"
    if echo:
        sh = shingles(text)
        if sh and len(sh & echo) / len(sh) >= 0.5:
            return "prompt_echo"
    return None


def confidence_mask(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Rows whose teacher max probability is at least `threshold` (bool [n])."""
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"expected probabilities [n, classes], got shape {probs.shape}")
    return probs.max(axis=1) >= threshold


# --------------------------------------------------------------------------- the chain


class TransferFilter:
    """All checks in order, cheapest first, with a count of why texts were dropped.

    `known` texts (gold and pool) seed the duplicate indexes; every accepted text joins them,
    so a batch cannot duplicate an earlier batch either. Quality checks are for machine text:
    augmented texts (edited real text, with mask tokens) skip them with `quality=False`.
    """

    def __init__(
        self,
        leak: LeakGuard | None = None,
        known: Iterable[str] = (),
        near_dup_threshold: float = 0.8,
        min_words: int = 3,
        max_words: int = 256,
        min_alpha: float = 0.6,
        max_repeat: float = 0.3,
        echo_texts: Iterable[str] = (),
        seed: int = 0,
    ) -> None:
        self.leak = leak
        self.exact: set[str] = set()
        self.near = NearDupIndex(near_dup_threshold, seed=seed)
        self.min_words, self.max_words = min_words, max_words
        self.min_alpha, self.max_repeat = min_alpha, max_repeat
        self.echo: frozenset[int] = frozenset()
        self.set_echo(echo_texts)
        self.dropped: Counter[str] = Counter()
        self.kept = 0
        for t in known:
            self.remember(t)

    def set_echo(self, echo_texts: Iterable[str]) -> None:
        """The prompt wording a candidate must not repeat (set once the prompts are known)."""
        self.echo = frozenset().union(*(shingles(t) for t in echo_texts))

    def remember(
        self, text: str, w: list[str] | None = None, sh: frozenset[int] | None = None
    ) -> None:
        """Register a text as present (without counting it as kept)."""
        w = words(text) if w is None else w
        norm = " ".join(w)
        if norm not in self.exact:
            self.exact.add(norm)
            self.near.add(text, shingles_of(w) if sh is None else sh)

    def problem(
        self,
        text: str,
        quality: bool = True,
        w: list[str] | None = None,
        sh: frozenset[int] | None = None,
    ) -> str | None:
        """The first reason to drop `text`, or None to keep it."""
        w = words(text) if w is None else w
        if len(w) < self.min_words:
            return "too_short"
        if len(w) > self.max_words:
            return "too_long"
        if quality:
            bad = quality_problem(text, self.min_alpha, self.max_repeat, self.echo)
            if bad:
                return bad
        if " ".join(w) in self.exact:
            return "duplicate"
        sh = shingles_of(w) if sh is None else sh
        if self.leak is not None and self.leak.is_leak(text, w, sh):
            return "test_leak"
        if self.near.find(text, sh) is not None:
            return "near_duplicate"
        return None

    def accept(self, text: str, quality: bool = True) -> bool:
        """Check one text; a kept text is remembered, a dropped one counted by reason."""
        w = words(text)
        sh = shingles_of(w)
        why = self.problem(text, quality, w, sh)
        if why is not None:
            self.dropped[why] += 1
            return False
        self.remember(text, w, sh)
        self.kept += 1
        return True

    def __call__(self, texts: Iterable[str], quality: bool = True) -> list[str]:
        """The texts that pass, in order."""
        return [t for t in texts if self.accept(t, quality)]
