"""Atomic writes: a file is either absent or complete, never half-written after a crash."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temp file in the same directory, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable: without it a power cut can undo a finished write."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> None:
    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def remove_stale_temps(directory: str | Path) -> int:
    """Delete temp files a killed writer left behind (`.<name>.<random>.tmp`); returns how many.

    Only call this on a directory no other process is writing to.
    """
    d = Path(directory)
    if not d.is_dir():
        return 0
    stale = list(d.glob(".*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def json_digest(payload: Any) -> str:
    """16 hex digits of SHA-256 over `payload` as sorted-key JSON (plain data only)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def recipe_key(
    recipe: Any, exclude: set[str] | None = None, context: dict[str, Any] | None = None
) -> str:
    """The key a run of any kind (pipeline stage, bench unit, embed or rationale student,
    generation shard) is resumed by: `json_digest` of a recipe model, or of a mapping or list
    whose values are models or plain data. Models are dumped as JSON (`exclude` drops fields
    of a top-level model, `context` reaches every serializer), so equal settings hash alike
    whichever kind of run hashes them."""

    def dump(value: Any) -> Any:
        if hasattr(value, "model_dump"):
            return value.model_dump(mode="json", context=context)
        if isinstance(value, dict):
            return {k: dump(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [dump(v) for v in value]
        return value

    if exclude is not None and hasattr(recipe, "model_dump"):
        return json_digest(recipe.model_dump(mode="json", exclude=exclude, context=context))
    return json_digest(dump(recipe))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_safetensors(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str]) -> None:
    """Weights are safetensors (never pickle), written atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata))
