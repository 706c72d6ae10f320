"""A content-keyed cache of teacher probabilities that survives crashes and is shared by students.

Layout: `<root>/<teacher fingerprint>/shard-<n>.safetensors`. A shard holds the SHA-256 keys
of the texts it labels (uint8 [n, 32]) and their probabilities (float32 [n, C]); its metadata
carries a checksum of both. Shards are written atomically after each batch of work, so an
interrupted labeling run keeps everything up to the last finished shard; a shard that fails
its checksum (a damaged disk, a hand-edited file) is reported, removed and recomputed.

The shard store itself (`ShardCache`) and the fill loop (`cached_rows`) know nothing about
probabilities: the embedding cache (`label/embeddings.py`) is the same store with wider rows.

Several processes may fill one directory at once (runs sharing `label.cache_dir`): shards
are only ever added, under unique names, and the fill loop claims each shard's texts before
computing them (`label/claims.py`), so no text is computed twice except the in-flight shard
of a process that was killed, which the others take over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from tinystudent.code_version import versioned
from tinystudent.io import save_safetensors
from tinystudent.label import claims

if TYPE_CHECKING:  # teachers import the embedding cache: a runtime import would be circular
    from tinystudent.teachers.base import Teacher

log = logging.getLogger(__name__)

#: Bump when soft labels for the same teacher and texts change (how they are computed or
#: stored): every soft-label cache is refilled and students retrain (`tinystudent.code_version`).
CODE_VERSION = 1


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _checksum(keys: np.ndarray, rows: np.ndarray) -> str:
    return hashlib.sha256(keys.tobytes() + rows.astype("<f4").tobytes()).hexdigest()


@dataclass
class LabelStats:
    """What a labeling call did: the end-to-end tests assert reuse through these counts."""

    total: int = 0
    hits: int = 0
    computed: int = 0
    corrupt_shards: int = 0
    seconds: float = 0.0
    #: missing texts that another process filling the same cache computed meanwhile
    by_others: int = 0


#: The same counts describe any cache fill (labels or embeddings).
CacheStats = LabelStats


class ShardCache:
    """float32 rows of a fixed width keyed by (fingerprint, SHA-256 of the text).

    Subclasses only name the tensor and the width's meaning; loading, verification and
    atomic appends are shared.
    """

    tensor: ClassVar[str] = "rows"
    what: ClassVar[str] = "cache"

    def __init__(self, root: str | Path, fingerprint: str, width: int) -> None:
        self.dir = Path(root) / fingerprint
        self.width = width
        self._table: dict[bytes, np.ndarray] = {}
        self._loaded: set[str] = set()
        self.corrupt_shards = 0
        self._load()

    def _shard_names(self) -> list[str]:
        """Shard file names in order (names, not Paths: this runs once a shard while filling)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.startswith("shard-") and n.endswith(".safetensors"))

    def _load(self) -> set[bytes]:
        """Read every shard not read yet (those written since by other processes too);
        returns the keys they brought."""
        from safetensors import safe_open

        added: set[bytes] = set()
        for name in self._shard_names():
            if name in self._loaded:
                continue
            self._loaded.add(name)
            path = self.dir / name
            try:
                with safe_open(str(path), framework="np") as f:
                    meta = f.metadata() or {}
                    keys = f.get_tensor("keys")
                    rows = f.get_tensor(self.tensor)
                ok = (
                    meta.get("checksum") == _checksum(keys, rows)
                    and keys.ndim == 2
                    and keys.shape[1] == 32
                    and rows.shape == (keys.shape[0], self.width)
                )
            except Exception:  # truncated or garbled file: safetensors raises several types
                ok = False
            if not ok:
                log.warning(
                    "%s: %s is damaged; removing it, it will be recomputed", self.what, path
                )
                self.corrupt_shards += 1
                path.unlink(missing_ok=True)
                continue
            for k, r in zip(keys, rows):
                self._table[k.tobytes()] = r
                added.add(k.tobytes())
        return added

    def refresh(self) -> set[bytes]:
        """Pick up shards other processes have written since; returns their keys."""
        return self._load()

    def __len__(self) -> int:
        return len(self._table)

    def get(self, text: str) -> np.ndarray | None:
        return self._table.get(text_key(text))

    def _metadata(self) -> dict[str, str]:
        return {"width": str(self.width)}

    def put(self, texts: list[str], rows: np.ndarray) -> None:
        """Append one shard (atomically) and make its rows visible to `get`."""
        if len(texts) != len(rows):
            raise ValueError(f"{len(texts)} texts but {len(rows)} rows")
        if not texts:
            return
        keys = np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(-1, 32)
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.shape[1:] != (self.width,):
            raise ValueError(f"rows of width {rows.shape[1:]} in a cache of width {self.width}")
        # the pid and a random tag make the name unique among processes writing at once
        n, tag = len(self._loaded), os.urandom(3).hex()
        path = self.dir / f"shard-{n:06d}-{os.getpid()}-{tag}.safetensors"
        save_safetensors(
            path,
            {"keys": torch.from_numpy(keys.copy()), self.tensor: torch.from_numpy(rows)},
            {"checksum": _checksum(keys, rows), **self._metadata()},
        )
        self._loaded.add(path.name)
        for k, r in zip(keys, rows):
            self._table[k.tobytes()] = r


class SoftLabelCache(ShardCache):
    """Teacher probabilities keyed by (teacher fingerprint, SHA-256 of the text)."""

    tensor = "probs"
    what = "soft-label cache"

    def __init__(self, root: str | Path, fingerprint: str, n_classes: int) -> None:
        super().__init__(root, versioned(fingerprint, CODE_VERSION), n_classes)

    @property
    def n_classes(self) -> int:
        return self.width

    def _metadata(self) -> dict[str, str]:
        return {"n_classes": str(self.width)}


def cached_rows(
    cache: ShardCache,
    texts: list[str],
    compute: Callable[[list[str]], np.ndarray],
    shard_size: int = 1024,
    desc: str = "computing",
) -> tuple[np.ndarray, CacheStats]:
    """Rows for `texts` in input order, calling `compute` only on what `cache` lacks.

    Missing texts are computed shortest-first (similar lengths batch with little padding) in
    shards of `shard_size`, each saved as soon as it is done: a crash loses at most one shard.
    Other processes filling the same directory share the work (see `claims`).
    """
    start = time.perf_counter()
    stats = CacheStats(total=len(texts))
    cache.refresh()
    # Sorted by (length, text), not by set order: batches (and so padding) must not depend
    # on PYTHONHASHSEED, or reruns would not be bit-identical.
    missing = sorted({t for t in texts if cache.get(t) is None}, key=lambda t: (len(t), t))
    stats.hits = sum(1 for t in texts if cache.get(t) is not None)
    if missing:
        with tqdm(total=len(missing), desc=desc, unit="text") as bar:
            _fill(cache, missing, compute, shard_size, stats, bar)
    stats.corrupt_shards = cache.corrupt_shards
    rows = [cache.get(t) for t in texts]
    if any(r is None for r in rows):  # only possible if the cache directory was tampered with
        raise RuntimeError(f"{cache.what} lost rows while filling")
    out = np.stack(rows) if rows else np.zeros((0, cache.width), np.float32)  # type: ignore[arg-type]
    stats.seconds = time.perf_counter() - start
    return out.astype(np.float32), stats


def _fill(
    cache: ShardCache,
    todo: list[str],
    compute: Callable[[list[str]], np.ndarray],
    shard_size: int,
    stats: CacheStats,
    bar: tqdm,
) -> None:
    """Claim, compute and save shards of `todo` until every text is in `cache`.

    Under the directory lock: read new shards, drop claims of dead processes, claim the next
    `shard_size` texts nobody holds. With nothing left to claim, wait for the holders.
    """
    keys = {t: text_key(t) for t in todo}  # hashed once: the loop below runs per shard
    while True:
        with claims.dir_lock(cache.dir):
            added = cache.refresh()
            left = [t for t in todo if keys[t] not in added] if added else todo
            stats.by_others += len(todo) - len(left)
            bar.update(len(todo) - len(left))
            todo = left
            if not todo:
                return
            taken = claims.live_claims(cache.dir)
            chunk = list(islice((t for t in todo if keys[t] not in taken), shard_size))
            claim = claims.write_claim(cache.dir, [keys[t] for t in chunk]) if chunk else None
        if claim is None:  # everything left is being computed by other processes
            time.sleep(claims.POLL)
            continue
        with claims.holding(claim):
            cache.put(chunk, compute(chunk))
        stats.computed += len(chunk)
        bar.update(len(chunk))
        done = set(chunk)
        todo = [t for t in todo if t not in done]


def label_texts(
    teacher: Teacher,
    texts: list[str],
    cache_root: str | Path,
    shard_size: int = 1024,
    desc: str = "labeling",
) -> tuple[np.ndarray, LabelStats]:
    """Teacher probabilities for `texts`, computing only what the cache lacks.

    Missing texts are labeled longest-last in shards of `shard_size`, each shard saved as soon
    as it is done: a crash loses at most one shard of work.
    """
    cache = SoftLabelCache(cache_root, teacher.fingerprint, len(teacher.label_names))
    return cached_rows(cache, texts, teacher.predict_proba, shard_size, desc)
