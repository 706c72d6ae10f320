"""Generated texts on disk as numbered JSONL shards, one per generation batch.

Sampling an LM on CPU is the slowest step of a run (seconds per text), so every batch is
saved the moment it is filtered: `shard-000123.jsonl`, written atomically (a shard is either
complete or absent). A rerun reads the shards it finds and continues at the next number, and
since batch N always uses seed f(seed, N), a resumed run draws what an uninterrupted one would.
A `manifest.json` records the settings the shards came from; shards from other settings are
stale and removed rather than silently mixed in.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from tinystudent.io import read_json, write_json, write_text

log = logging.getLogger(__name__)
_SHARD = re.compile(r"^shard-(\d{6})\.jsonl$")


class ShardStore:
    """Numbered JSONL shards of records (dicts) under one directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.json"

    def paths(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.iterdir() if _SHARD.match(p.name))

    def next_index(self) -> int:
        found = [int(m.group(1)) for p in self.paths() if (m := _SHARD.match(p.name))]
        return max(found, default=-1) + 1

    def write(self, index: int, records: list[dict[str, Any]]) -> Path:
        """One shard, atomically; an empty shard still records that batch `index` was done."""
        path = self.root / f"shard-{index:06d}.jsonl"
        write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return path

    def read(self) -> list[dict[str, Any]]:
        """All records in shard order; an unreadable shard is reported and removed (redone)."""
        out: list[dict[str, Any]] = []
        for path in self.paths():
            try:
                rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
                if not all(isinstance(r, dict) and isinstance(r.get("text"), str) for r in rows):
                    raise ValueError("a record without a text")
            except (ValueError, UnicodeDecodeError) as e:
                log.warning("generation shard %s is damaged (%s); removing it", path, e)
                path.unlink(missing_ok=True)
                continue
            out.extend(rows)
        return out

    def sync_manifest(self, key: str, info: dict[str, Any]) -> bool:
        """Make the store belong to settings `key`; returns False when stale shards were dropped."""
        if self.manifest_path.exists():
            old = read_json(self.manifest_path)
            if old.get("key") == key:
                return True
            stale = self.paths()
            if stale:
                log.warning(
                    "generation settings changed (%s -> %s): removing %d stale shards in %s",
                    old.get("key"),
                    key,
                    len(stale),
                    self.root,
                )
            for p in stale:
                p.unlink()
            write_json(self.manifest_path, {"key": key, **info})
            return False
        for p in self.paths():  # shards without a manifest cannot be trusted either
            p.unlink()
        write_json(self.manifest_path, {"key": key, **info})
        return True
