"""Claim files: several processes filling one cache directory split the work between them.

A process that is about to compute a shard first writes `claim-<pid>-<id>.json` (atomically,
under the directory's lock) naming the texts' keys; the others skip those texts and, once
nothing unclaimed is left, wait for the claimed rows to appear. So a text is computed once,
except after a crash: a claim whose owner is dead (same host, pid gone) or whose heartbeat
(its mtime, touched while the owner computes) is older than `CLAIM_TTL` is stale, removed,
and its texts are computed by whoever comes next. The lock is `flock` on `.lock`: the kernel
releases it when its holder dies, so it can never be left stuck (where `fcntl` is missing,
as on Windows, there is no lock and only the claims coordinate).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Seconds without a heartbeat after which a claim is stale (its owner hung or another host
#: died). The owner touches its claim every `HEARTBEAT` seconds while it computes.
CLAIM_TTL = 60.0
HEARTBEAT = 5.0
#: How often a process with nothing left to claim looks for the rows others are computing.
POLL = 0.2
#: A writer's temp file (`.shard-*.tmp`) this old was left by a killed process.
STALE_TEMP = 3600.0

HOST = socket.gethostname()


@contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    """Exclusive lock of `directory` for as long as the block runs (and its holder lives)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts as alive)."""
    if os.name != "posix":  # pragma: no cover - no cheap check; the heartbeat TTL decides
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _stale_reason(path: Path, now: float) -> tuple[str | None, frozenset[bytes]]:
    """Why the claim at `path` is stale (None if live), and the keys it holds."""
    try:
        age = now - path.stat().st_mtime
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = frozenset(bytes.fromhex(k) for k in data["keys"])
        pid, host = int(data["pid"]), str(data["host"])
    except FileNotFoundError:
        return "released", frozenset()
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable", frozenset()
    if host == HOST and pid != os.getpid() and not pid_alive(pid):
        return f"its owner (pid {pid}) is dead", keys
    if age > CLAIM_TTL:
        return f"no heartbeat for {age:.0f} s", keys
    return None, keys


def live_claims(directory: Path) -> set[bytes]:
    """Keys claimed by live processes; stale claims are removed. Call under `dir_lock`."""
    now = time.time()
    taken: set[bytes] = set()
    for path in directory.glob("claim-*.json"):
        reason, keys = _stale_reason(path, now)
        if reason is None:
            taken |= keys
            continue
        if reason != "released":
            log.warning("%s: stale claim (%s); its %d texts are redone", path, reason, len(keys))
            path.unlink(missing_ok=True)
    for tmp in directory.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_TEMP:
                tmp.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
    return taken


def write_claim(directory: Path, keys: Iterable[bytes]) -> Path:
    """Claim `keys` for this process. Call under `dir_lock`, after `live_claims`.

    Renamed into place, so never seen half-written, but not fsynced: a claim lost to a
    power cut only means its texts are computed again."""
    name = f"claim-{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
    path, tmp = directory / name, directory / f".{name}.tmp"
    data = {"pid": os.getpid(), "host": HOST, "keys": [k.hex() for k in keys]}
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
    return path


@contextmanager
def holding(claim: Path) -> Iterator[None]:
    """Keep `claim` fresh (mtime) while the block computes, then release it, even on error."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT):
            try:
                os.utime(claim)
            except FileNotFoundError:  # taken over as stale: our shard is still valid
                return

    thread = threading.Thread(target=beat, name=f"heartbeat {claim.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        claim.unlink(missing_ok=True)
