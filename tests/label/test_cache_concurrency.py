"""Several processes filling one cache directory: no corruption, no text computed twice.

The main test starts real processes on the same cache, SIGKILLs one while it holds a claim,
and checks that the survivors take its work over: every text ends up in exactly one shard,
nobody but the killed process's in-flight shard is computed twice, and every survivor gets
the probabilities a single-process run gives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tinystudent.label import SoftLabelCache, claims, label_texts
from tinystudent.label.cache import text_key

sys.path.insert(0, str(Path(__file__).parent))
from fill_worker import TEXTS, SlowTeacher, ordered  # noqa: E402

WORKER = Path(__file__).with_name("fill_worker.py")
SHARD = 8


def shard_keys(cache_dir: Path) -> Counter[bytes]:
    keys: Counter[bytes] = Counter()
    for shard in cache_dir.glob("shard-*.safetensors"):
        keys.update(bytes(k) for k in load_file(str(shard))["keys"])
    return keys


def start_worker(tmp: Path, i: int) -> subprocess.Popen[bytes]:
    args = [tmp / "cache", tmp / f"log{i}", tmp / f"out{i}.npy", tmp / "go", SHARD, 0.25, i]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)], env=env, stderr=subprocess.PIPE
    )


def wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def wait_for_lines(path: Path, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text(encoding="utf-8").splitlines()) >= n:
            return
        time.sleep(0.005)
    raise AssertionError(f"{path} never reached {n} lines")


def test_killed_worker_is_taken_over_and_nothing_is_computed_twice(tmp_path: Path) -> None:
    procs = [start_worker(tmp_path, i) for i in range(3)]
    for i in range(3):
        wait_for(tmp_path / f"log{i}.ready")
    (tmp_path / "go").touch()
    # worker 0 has started its second shard: it holds a claim when it dies
    wait_for_lines(tmp_path / "log0", 2 * SHARD)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    for p in procs[1:]:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode(errors="replace")[-3000:]

    reference, _ = label_texts(SlowTeacher(), TEXTS, tmp_path / "single")
    by_text = dict(zip(TEXTS, reference))
    for i in (1, 2):  # each survivor: the single-process probabilities, in its own order
        got = np.load(tmp_path / f"out{i}.npy")
        np.testing.assert_array_equal(got, np.stack([by_text[t] for t in ordered(i)]))

    cache_dir = tmp_path / "cache" / SlowTeacher.fingerprint
    assert shard_keys(cache_dir) == Counter(text_key(t) for t in TEXTS)  # each exactly once
    assert not list(cache_dir.glob("claim-*"))  # the dead worker's claim was cleared

    logs = [(tmp_path / f"log{i}").read_text(encoding="utf-8").splitlines() for i in range(3)]
    survivors = Counter(logs[1] + logs[2])
    assert max(survivors.values()) == 1 and len(logs[1]) and len(logs[2])  # work was shared
    twice = set(logs[0]) & set(survivors)
    # only the shard worker 0 was computing when killed was redone
    assert set(logs[0][-SHARD:]) >= twice and len(twice) <= SHARD
    assert set(logs[0]) | set(survivors) == set(TEXTS)
    for i in (1, 2):  # each survivor's stats: what it computed, and what it found done
        stats = json.loads((tmp_path / f"out{i}.npy.json").read_text())
        assert stats["computed"] == len(logs[i]) and stats["by_others"] > 0
        assert stats["hits"] + stats["computed"] + stats["by_others"] == len(TEXTS)


def fill_in_thread(cache_root: Path, texts: list[str], teacher: SlowTeacher) -> list[object]:
    result: list[object] = []
    thread = threading.Thread(
        target=lambda: result.append(label_texts(teacher, texts, cache_root, SHARD)), daemon=True
    )
    thread.start()
    result.append(thread)
    return result


def claim(cache_dir: Path, texts: list[str]) -> Path:
    with claims.dir_lock(cache_dir):
        return claims.write_claim(cache_dir, map(text_key, texts))


def test_live_claim_is_waited_for_not_recomputed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(claims, "POLL", 0.01)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cache_dir = tmp_path / SlowTeacher.fingerprint
        held = claim(cache_dir, TEXTS[:SHARD])  # as if another live process computed these
        held.write_text(held.read_text().replace(str(os.getpid()), str(other.pid)))
        teacher = SlowTeacher(tmp_path / "log")
        result = fill_in_thread(tmp_path, TEXTS[: 3 * SHARD], teacher)
        wait_for_lines(tmp_path / "log", 2 * SHARD)
        time.sleep(0.2)
        assert result[0].is_alive()  # type: ignore[attr-defined]  # waiting for the holder
        SoftLabelCache(tmp_path, SlowTeacher.fingerprint, 3).put(
            TEXTS[:SHARD], SlowTeacher().predict_proba(TEXTS[:SHARD])
        )
        held.unlink()
        result[0].join(timeout=30)  # type: ignore[attr-defined]
        _, stats = result[1]  # type: ignore[misc]
    finally:
        other.kill()
        other.wait()
    assert stats.computed == 2 * SHARD and stats.by_others == SHARD
    assert set((tmp_path / "log").read_text().splitlines()) == set(TEXTS[SHARD : 3 * SHARD])


@pytest.mark.parametrize("why", ["dead owner", "no heartbeat", "unreadable"])
def test_stale_claim_is_taken_over(tmp_path: Path, monkeypatch, why: str) -> None:
    cache_dir = tmp_path / SlowTeacher.fingerprint
    held = claim(cache_dir, TEXTS[:SHARD])
    if why == "dead owner":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        held.write_text(held.read_text().replace(str(os.getpid()), str(gone.pid)))
    elif why == "no heartbeat":  # a live pid (ours) but silent for longer than the TTL
        monkeypatch.setattr(claims, "CLAIM_TTL", 5.0)
        old = time.time() - 10
        os.utime(held, (old, old))
    else:
        held.write_text("{not json")
    teacher = SlowTeacher(tmp_path / "log")
    probs, stats = label_texts(teacher, TEXTS[: 2 * SHARD], tmp_path, SHARD)
    assert stats.computed == 2 * SHARD and not held.exists()
    np.testing.assert_array_equal(probs, SlowTeacher().predict_proba(TEXTS[: 2 * SHARD]))


def test_heartbeat_keeps_a_long_claim_fresh(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(claims, "HEARTBEAT", 0.02)
    cache_dir = tmp_path / "c"
    held = claim(cache_dir, TEXTS[:2])
    old = time.time() - 1000
    os.utime(held, (old, old))
    with claims.holding(held):
        time.sleep(0.2)
        assert time.time() - held.stat().st_mtime < 5
        with claims.dir_lock(cache_dir):
            assert claims.live_claims(cache_dir) == {text_key(t) for t in TEXTS[:2]}
    assert not held.exists()  # released when the block ends
