"""The HTTP server: answers, limits, errors without stack traces, timeouts, micro-batching.

Everything runs in-process (FastAPI's TestClient, httpx on the ASGI app) except one test that
starts the real CLI server on 127.0.0.1; nothing leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("onnxruntime")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from tinystudent.errors import TinyStudentError  # noqa: E402
from tinystudent.inference import Predictor  # noqa: E402
from tinystudent.serve import (  # noqa: E402
    INSTALL_HINT,
    MicroBatcher,
    QueueFullError,
    ServeSettings,
    serve,
)
from tinystudent.serve.app import create_app  # noqa: E402

TEXTS = ["a good film", "dull plot and bad actors", "", "ok !"]


def client(export_dir: Path, **limits: Any) -> TestClient:
    app = create_app(Predictor.load(export_dir, threads=1), ServeSettings(**limits))
    return TestClient(app, raise_server_exceptions=False)


def test_predict_health_metadata(export_dir: Path) -> None:
    with client(export_dir) as c:
        r = c.post("/predict", json={"texts": TEXTS})
        assert r.status_code == 200
        preds = r.json()["predictions"]
        want = Predictor.load(export_dir).predict_proba(TEXTS)
        assert [p["label"] for p in preds] == [["neg", "pos"][i] for i in want.argmax(1)]
        got = np.array([[p["probs"]["neg"], p["probs"]["pos"]] for p in preds])
        np.testing.assert_allclose(got, want, atol=1e-6)

        health = c.get("/health").json()
        assert health["status"] == "ok" and health["variant"] == "int8"
        meta = c.get("/metadata").json()
        assert meta["labels"] == ["neg", "pos"] and meta["teacher"]["name"] == "tiny-bert"
        assert meta["data"]["k"] == 8 and meta["metrics"]["ONNX int8"]["accuracy"] == 0.8
        assert meta["limits"]["max_texts"] == 256


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"texts": ["x"] * 5}, 413, "5 texts in one request; the limit is 4"),
        ({"texts": ["ok", "y" * 101]}, 413, "texts.1: 101 characters; the limit is 100"),
        ({"texts": ["z" * 5000] * 3}, 413, "request body over"),
        ({"texts": []}, 422, "texts: List should have at least 1 item"),
        ({"texts": "one string"}, 422, "texts: Input should be a valid array"),
        ({"texts": ["fine", 3]}, 422, "texts.1: Input should be a valid string"),
        ({"text": ["typo"]}, 422, "texts: Field required"),
        ("{not json", 422, "Invalid JSON"),
    ],
)
def test_bad_requests_get_a_clear_one_line_answer(
    export_dir: Path, body: object, status: int, message: str
) -> None:
    with client(export_dir, max_texts=4, max_chars=100) as c:
        if isinstance(body, str):
            r = c.post("/predict", content=body, headers={"content-type": "application/json"})
        else:
            r = c.post("/predict", json=body)
    assert r.status_code == status
    assert list(r.json()) == ["detail"] and message in r.json()["detail"], r.json()


def test_a_crash_answers_500_without_internals(export_dir: Path) -> None:
    predictor = Predictor.load(export_dir)

    def boom(texts: list[str]) -> np.ndarray:
        raise RuntimeError("secret internal detail")

    predictor.predict_proba = boom  # type: ignore[method-assign]
    with TestClient(create_app(predictor), raise_server_exceptions=False) as c:
        r = c.post("/predict", json={"texts": ["a"]})
        assert c.get("/health").status_code == 200  # the server goes on
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text
    assert r.json() == {"detail": "internal error; see the server log"}


def test_slow_requests_time_out(export_dir: Path) -> None:
    predictor = Predictor.load(export_dir)
    fast = predictor.predict_proba

    def slow(texts: list[str]) -> np.ndarray:
        time.sleep(0.5)
        return fast(texts)

    predictor.predict_proba = slow  # type: ignore[method-assign]
    app = create_app(predictor, ServeSettings(timeout_s=0.1))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/predict", json={"texts": ["a"]})
    assert r.status_code == 504 and "longer than 0.1 s" in r.json()["detail"]


def test_unknown_routes_and_methods_are_plain_json(export_dir: Path) -> None:
    with client(export_dir) as c:
        assert c.get("/nope").json() == {"detail": "Not Found"}
        assert c.get("/predict").status_code == 405


def test_concurrent_requests_share_model_calls(export_dir: Path) -> None:
    """Through the app: 24 concurrent one-text requests take far fewer than 24 calls."""
    app = create_app(Predictor.load(export_dir), ServeSettings(max_batch=8, max_wait_ms=20))

    async def burst() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                calls = [c.post("/predict", json={"texts": [f"text {i}"]}) for i in range(24)]
                return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert app.state.batcher.batches <= 12


def test_micro_batcher_groups_bounds_and_routes_results() -> None:
    sizes: list[int] = []

    def predict(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        return np.array([[float(t)] for t in texts])  # each row names its text

    async def go() -> list[np.ndarray]:
        b = MicroBatcher(predict, max_batch=5, max_wait_ms=30)
        await b.start()
        try:
            reqs = [[str(i)] * (1 + i % 3) for i in range(12)]  # 1, 2 or 3 texts each
            return await asyncio.gather(*(b.submit(r) for r in reqs))
        finally:
            await b.stop()

    results = asyncio.run(go())
    for i, rows in enumerate(results):
        assert rows.ravel().tolist() == [float(i)] * (1 + i % 3)
    assert max(sizes) <= 5 and len(sizes) < 12 and sum(sizes) == 24


def test_micro_batcher_refuses_past_its_queue() -> None:
    started, release = threading.Event(), threading.Event()

    def predict(texts: list[str]) -> np.ndarray:
        started.set()
        release.wait(5)
        return np.zeros((len(texts), 1))

    async def go() -> None:
        b = MicroBatcher(predict, max_batch=1, max_wait_ms=0, max_queue=1)
        await b.start()
        try:
            first = asyncio.ensure_future(b.submit(["a"]))
            while not started.is_set():  # the worker holds "a"; the queue is empty again
                await asyncio.sleep(0.005)
            second = asyncio.ensure_future(b.submit(["b"]))
            await asyncio.sleep(0.01)
            with pytest.raises(QueueFullError):
                await b.submit(["c"])
            release.set()
            await asyncio.gather(first, second)
        finally:
            release.set()
            await b.stop()

    asyncio.run(go())


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="--max-texts"):
        ServeSettings(max_texts=0)
    with pytest.raises(ValueError, match="--timeout"):
        ServeSettings(timeout_s=0)


def test_missing_runtime_names_the_install(
    export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(TinyStudentError, match="pip install 'tinystudent\\[export\\]'"):
        serve(str(export_dir))
    assert "pip install 'tinystudent[serve]'" in INSTALL_HINT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_serves_on_loopback(export_dir: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "tinystudent", "serve", str(export_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        r = httpx.post(f"{base}/predict", json={"texts": TEXTS}, timeout=10)
        assert r.status_code == 200 and len(r.json()["predictions"]) == len(TEXTS)
        assert json.loads(httpx.get(f"{base}/metadata").text)["name"] == "toy-k8"
    finally:
        proc.terminate()
        proc.wait(10)
