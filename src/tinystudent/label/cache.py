"""A content-keyed cache of teacher probabilities that survives crashes and is shared by students.

Layout: `<root>/<teacher fingerprint>/shard-<n>.safetensors`. A shard holds the SHA-256 keys
of the texts it labels (uint8 [n, 32]) and their probabilities (float32 [n, C]); its metadata
carries a checksum of both. Shards are written atomically after each batch of work, so an
interrupted labeling run keeps everything up to the last finished shard; a shard that fails
its checksum (a damaged disk, a hand-edited file) is reported, removed and recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tinystudent.io import save_safetensors
from tinystudent.teachers.base import Teacher

log = logging.getLogger(__name__)


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _checksum(keys: np.ndarray, probs: np.ndarray) -> str:
    return hashlib.sha256(keys.tobytes() + probs.astype("<f4").tobytes()).hexdigest()


@dataclass
class LabelStats:
    """What a labeling call did: the end-to-end tests assert reuse through these counts."""

    total: int = 0
    hits: int = 0
    computed: int = 0
    corrupt_shards: int = 0
    seconds: float = 0.0


class SoftLabelCache:
    """Teacher probabilities keyed by (teacher fingerprint, SHA-256 of the text)."""

    def __init__(self, root: str | Path, fingerprint: str, n_classes: int) -> None:
        self.dir = Path(root) / fingerprint
        self.n_classes = n_classes
        self._table: dict[bytes, np.ndarray] = {}
        self.corrupt_shards = 0
        self._load()

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.safetensors")) if self.dir.exists() else []

    def _load(self) -> None:
        from safetensors import safe_open

        for path in self._shards():
            try:
                with safe_open(str(path), framework="np") as f:
                    meta = f.metadata() or {}
                    keys = f.get_tensor("keys")
                    probs = f.get_tensor("probs")
                ok = (
                    meta.get("checksum") == _checksum(keys, probs)
                    and keys.ndim == 2
                    and keys.shape[1] == 32
                    and probs.shape == (keys.shape[0], self.n_classes)
                )
            except Exception:  # truncated or garbled file: safetensors raises several types
                ok = False
            if not ok:
                log.warning(
                    "soft-label cache: %s is damaged; removing it, it will be recomputed", path
                )
                self.corrupt_shards += 1
                path.unlink(missing_ok=True)
                continue
            for k, p in zip(keys, probs):
                self._table[k.tobytes()] = p

    def __len__(self) -> int:
        return len(self._table)

    def get(self, text: str) -> np.ndarray | None:
        return self._table.get(text_key(text))

    def put(self, texts: list[str], probs: np.ndarray) -> None:
        """Append one shard (atomically) and make its rows visible to `get`."""
        if len(texts) != len(probs):
            raise ValueError(f"{len(texts)} texts but {len(probs)} probability rows")
        if not texts:
            return
        keys = np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(-1, 32)
        probs = np.ascontiguousarray(probs, dtype=np.float32)
        n = len(self._shards())
        path = self.dir / f"shard-{n:06d}-{int(time.time() * 1e6) % 10**9:09d}.safetensors"
        save_safetensors(
            path,
            {"keys": torch.from_numpy(keys.copy()), "probs": torch.from_numpy(probs)},
            {"checksum": _checksum(keys, probs), "n_classes": str(self.n_classes)},
        )
        for k, p in zip(keys, probs):
            self._table[k.tobytes()] = p


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
    start = time.perf_counter()
    cache = SoftLabelCache(cache_root, teacher.fingerprint, len(teacher.label_names))
    stats = LabelStats(total=len(texts), corrupt_shards=cache.corrupt_shards)
    missing = sorted({t for t in texts if cache.get(t) is None}, key=len)
    stats.hits = sum(1 for t in texts if cache.get(t) is not None)
    if missing:
        with tqdm(total=len(missing), desc=desc, unit="text") as bar:
            for i in range(0, len(missing), shard_size):
                chunk = missing[i : i + shard_size]
                cache.put(chunk, teacher.predict_proba(chunk))
                bar.update(len(chunk))
    stats.computed = len(missing)
    rows = [cache.get(t) for t in texts]
    if any(r is None for r in rows):  # only possible if the cache directory was tampered with
        raise RuntimeError("soft-label cache lost rows during labeling")
    out = np.stack(rows) if rows else np.zeros((0, len(teacher.label_names)), np.float32)  # type: ignore[arg-type]
    stats.seconds = time.perf_counter() - start
    return out.astype(np.float32), stats
