"""`tinystudent serve` as a real process on 127.0.0.1: `--workers N` (a killed worker is
replaced, the port keeps answering), and a short bounded mixed load (valid requests all
succeed while malformed, oversized, slow and flooding ones each get their status)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("onnxruntime")

from tinystudent.serve.loadtest import LoadSpec, run_load  # noqa: E402

HOST = "127.0.0.1"


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def start(export_dir: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def run(*flags: str) -> tuple[subprocess.Popen[str], str]:
        cmd = [sys.executable, "-m", "tinystudent", "serve", str(export_dir), "--port", "0"]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.Popen([*cmd, *flags], stderr=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "serving ... on http://127.0.0.1:PORT (...)"
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        base = f"http://{HOST}:{match.group(1)}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_workers_share_the_port_and_a_killed_one_is_replaced(start) -> None:  # type: ignore[no-untyped-def]
    proc, base = start("--workers", "2")
    workers = children(proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # the supervisor starts another; meanwhile the other worker answers
        r = httpx.post(f"{base}/predict", json={"texts": ["still here"]}, timeout=10)
        assert r.status_code == 200
        now = children(proc.pid)
        if len(now) == 2 and workers[0] not in now:
            break
        assert time.monotonic() < deadline, f"no replacement worker: {now}"
        time.sleep(0.1)
    pids = {httpx.get(f"{base}/health", timeout=5).json()["pid"] for _ in range(20)}
    assert pids <= set(now)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not any(Path(f"/proc/{w}").exists() for w in now)


def test_mixed_load_valid_all_succeed_bad_each_get_their_status(start) -> None:  # type: ignore[no-untyped-def]
    proc, base = start("--read-timeout", "0.5", "--max-connections", "12")
    port = int(base.rsplit(":", 1)[1])
    texts = ["a good film", "dull plot and bad actors", "ok !", "fine, I guess"]
    spec = LoadSpec(
        clients=4, seconds=2.0, bad_clients=1, slow_clients=1, slow_interval_s=0.05,
        flood=16, read_timeout_s=0.5,
    )  # fmt: skip
    report = asyncio.run(run_load(HOST, port, texts, spec))
    assert report["ok"] > 0 and report["valid_errors"] == 0, report["valid_error_kinds"]
    assert report["bad_unexpected"] == 0, report["bad_by_kind"]
    kinds = report["bad_by_kind"]
    assert {"malformed JSON", "body too large", "head too large", "slow head"} <= set(kinds)
    assert kinds["connection flood"]["got"].get("503", 0) > 0  # the limit held under load
    health = httpx.get(f"{base}/health", timeout=5).json()
    assert proc.poll() is None and health["status"] == "ok"
    assert health["connections"] <= 12
