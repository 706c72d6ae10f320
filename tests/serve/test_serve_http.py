"""The built-in server (`tinystudent serve`): answers, every limit's status, slow clients,
keep-alive and pipelining, and the micro-batcher's behaviour. Servers run in-process on a
127.0.0.1 socket with port 0; clients speak raw HTTP through `tinystudent.serve.loadtest.Conn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from tinystudent.cli import main  # noqa: E402
from tinystudent.inference import Predictor  # noqa: E402
from tinystudent.serve import MicroBatcher, QueueFullError, ServeSettings  # noqa: E402
from tinystudent.serve.loadtest import Conn, LoadSpec, bad_requests, predict_request  # noqa: E402
from tinystudent.serve.server import bind, close_server, open_server  # noqa: E402

HOST = "127.0.0.1"


def body(texts: list[Any]) -> bytes:
    return json.dumps({"texts": texts}).encode()


@contextlib.asynccontextmanager
async def running(predictor: Any, **limits: Any) -> AsyncIterator[int]:
    sock = bind(HOST, 0)
    server, service = await open_server(predictor, ServeSettings(**limits), sock)
    try:
        yield int(sock.getsockname()[1])
    finally:
        await close_server(server, service)


def serve_then(predictor: Any, limits: dict[str, Any], client: Callable[[int], Any]) -> Any:
    async def go() -> Any:
        async with running(predictor, **limits) as port:
            return await client(port)

    return asyncio.run(go())


async def ask(port: int, raw: bytes, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    conn = await Conn.open(HOST, port)
    try:
        status, payload, _ = await conn.ask(raw, timeout)
    finally:
        conn.close()
    return status, json.loads(payload)


def blocking_predictor(export_dir: Path) -> tuple[Predictor, threading.Event, threading.Event]:
    """A predictor whose model calls wait for `release` (and say when one has `started`)."""
    predictor = Predictor.load(export_dir, threads=1)
    fast = predictor.predict_proba
    started, release = threading.Event(), threading.Event()

    def slow(texts: list[str]) -> np.ndarray:
        started.set()
        release.wait(10)
        return fast(texts)

    predictor.predict_proba = slow  # type: ignore[method-assign]
    return predictor, started, release


def test_answers_keep_alive_and_pipelining(export_dir: Path) -> None:
    predictor = Predictor.load(export_dir, threads=1)
    texts = ["a good film", "dull plot and bad actors", "", "ok !"]
    want = predictor.predict_proba(texts)

    async def client(port: int) -> None:
        conn = await Conn.open(HOST, port)
        for _ in range(3):  # one connection, several requests
            status, payload, closes = await conn.ask(predict_request(body(texts)))
            assert status == 200 and not closes
            preds = json.loads(payload)["predictions"]
            got = np.array([[p["probs"]["neg"], p["probs"]["pos"]] for p in preds])
            np.testing.assert_allclose(got, want, atol=1e-6)
            assert [p["label"] for p in preds] == [["neg", "pos"][i] for i in want.argmax(1)]
        # Two requests in one write: two answers, in order.
        conn.writer.write(predict_request(body(texts[:1])) + predict_request(body(texts[1:3])))
        first, second = await conn.answer(5), await conn.answer(5)
        assert len(json.loads(first[1])["predictions"]) == 1
        assert len(json.loads(second[1])["predictions"]) == 2
        get_with_body = b"GET /health HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"
        status, health, _ = await conn.ask(get_with_body)
        assert status == 200 and json.loads(health)["answers"]["200"] == 5
        assert json.loads(health)["held_bytes"] == 0  # every body's reservation released
        status, meta, _ = await conn.ask(b"GET /metadata HTTP/1.1\r\nhost: t\r\n\r\n")
        assert json.loads(meta)["name"] == "toy-k8"
        assert json.loads(meta)["limits"]["max_texts"] == 256
        conn.close()

    serve_then(predictor, {}, client)


LIMITS = {"max_texts": 4, "max_chars": 100}
BAD = bad_requests(LoadSpec(max_texts=4, max_chars=100))
MORE_BAD = {
    "unknown route": (b"GET /nope HTTP/1.1\r\nhost: t\r\n\r\n", 404, "Not Found"),
    "wrong method": (b"GET /predict HTTP/1.1\r\nhost: t\r\n\r\n", 405, "Method Not Allowed"),
    "chunked": (
        b"POST /predict HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        411,
        "send a Content-Length",
    ),
    "no length": (b"POST /predict HTTP/1.1\r\nhost: t\r\n\r\n", 411, "Content-Length"),
    "bad request line": (b"HELLO\r\n\r\n", 400, "malformed request line"),
    "bad length": (
        b"POST /predict HTTP/1.1\r\ncontent-length: -5\r\n\r\n",
        400,
        "invalid Content-Length",
    ),
    "conflicting lengths": (
        b"POST /predict HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}",
        400,
        "conflicting",
    ),
    "empty list": (predict_request(body([])), 422, "texts: List should have at least 1 item"),
    "not a string": (
        predict_request(body(["a", 3])),
        422,
        "texts.1: Input should be a valid string",
    ),
}


@pytest.mark.parametrize("kind", [*BAD, *MORE_BAD])
def test_each_bad_request_gets_its_status_and_one_line(export_dir: Path, kind: str) -> None:
    if kind in BAD:
        raw, status = BAD[kind]
        message = ""
    else:
        raw, status, message = MORE_BAD[kind]
    predictor = Predictor.load(export_dir, threads=1)

    async def client(port: int) -> None:
        got, payload = await ask(port, raw)
        assert got == status, (kind, payload)
        assert list(payload) == ["detail"] and message in payload["detail"]
        assert "Traceback" not in payload["detail"]
        ok, _ = await ask(port, predict_request(body(["still serving"])))
        assert ok == 200

    serve_then(predictor, LIMITS, client)


def test_limit_messages_name_the_limit(export_dir: Path) -> None:
    predictor = Predictor.load(export_dir, threads=1)

    async def client(port: int) -> list[str]:
        out = []
        for texts in (["x"] * 5, ["ok", "y" * 101]):
            status, payload = await ask(port, predict_request(body(texts)))
            assert status == 413
            out.append(payload["detail"])
        return out

    many, long = serve_then(predictor, LIMITS, client)
    assert many == "texts: 5 texts in one request; the limit is 4"
    assert long == "texts.1: 101 characters; the limit is 100 per text"


@pytest.mark.parametrize("part", ["head", "body"])
def test_slow_clients_get_408_however_they_trickle(export_dir: Path, part: str) -> None:
    predictor = Predictor.load(export_dir, threads=1)
    raw = predict_request(body(["slow"]))
    cut = raw.index(b"\r\n\r\n") + (4 if part == "body" else -10)

    async def client(port: int) -> float:
        conn = await Conn.open(HOST, port)
        t0 = time.perf_counter()
        conn.writer.write(raw[:cut])

        async def trickle() -> None:  # a byte every 50 ms never resets the deadline
            for b in raw[cut : len(raw) - 1]:
                conn.writer.write(bytes([b]))
                await asyncio.sleep(0.05)

        feeder = asyncio.ensure_future(trickle())
        status, payload, closes = await conn.answer(5)
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        conn.close()
        assert status == 408 and closes and b"within 0.3 s" in payload
        return time.perf_counter() - t0

    assert serve_then(predictor, {"read_timeout_s": 0.3}, client) < 2.0


def test_connection_limit_answers_503_then_recovers(export_dir: Path) -> None:
    predictor = Predictor.load(export_dir, threads=1)

    async def client(port: int) -> None:
        held = [await Conn.open(HOST, port) for _ in range(2)]
        await asyncio.sleep(0.05)
        status, payload = await ask(port, predict_request(body(["one too many"])))
        assert status == 503 and "too many connections" in payload["detail"]
        held.pop().close()
        await asyncio.sleep(0.05)
        assert (await ask(port, predict_request(body(["room again"]))))[0] == 200
        for c in held:
            c.close()

    serve_then(predictor, {"max_connections": 2}, client)


def test_queue_limit_answers_503_and_the_waiting_still_succeed(export_dir: Path) -> None:
    predictor, started, release = blocking_predictor(export_dir)

    async def client(port: int) -> None:
        first = asyncio.ensure_future(ask(port, predict_request(body(["a"]))))
        while not started.is_set():  # the model holds "a"; nothing waits yet
            await asyncio.sleep(0.005)
        second = asyncio.ensure_future(ask(port, predict_request(body(["b"]))))
        await asyncio.sleep(0.1)
        status, payload = await ask(port, predict_request(body(["c"])))
        assert status == 503 and "too many texts waiting" in payload["detail"]
        release.set()
        assert [r[0] for r in await asyncio.gather(first, second)] == [200, 200]

    try:
        serve_then(predictor, {"max_queue": 1, "max_batch": 1}, client)
    finally:
        release.set()


def test_bytes_held_at_once_are_bounded(export_dir: Path) -> None:
    predictor = Predictor.load(export_dir, threads=1)
    cap = ServeSettings(max_texts=1, max_chars=100).max_body_bytes
    limits = {"max_texts": 1, "max_chars": 100, "max_pending_bytes": 2 * cap}
    doc = body(["x" * 100])
    raw = predict_request(doc + b" " * (cap - 10 - len(doc)))  # JSON allows the spaces
    head_end = raw.index(b"\r\n\r\n") + 4

    async def client(port: int) -> None:
        conns = [await Conn.open(HOST, port) for _ in range(2)]
        for c in conns:  # two heads reserve their bodies; the bodies have not come yet
            c.writer.write(raw[:head_end])
        await asyncio.sleep(0.1)
        status, payload = await ask(port, raw)
        assert status == 503 and "request bytes held" in payload["detail"]
        for c in conns:
            c.writer.write(raw[head_end:])
            assert (await c.answer(5))[0] == 200
            c.close()
        assert (await ask(port, raw))[0] == 200  # released

    serve_then(predictor, limits, client)


def test_a_slow_model_times_out_with_504_and_the_server_goes_on(export_dir: Path) -> None:
    predictor, _, release = blocking_predictor(export_dir)

    async def client(port: int) -> None:
        status, payload = await ask(port, predict_request(body(["a"])))
        assert status == 504 and "longer than 0.2 s" in payload["detail"]
        release.set()
        assert (await ask(port, predict_request(body(["b"]))))[0] == 200

    try:
        serve_then(predictor, {"timeout_s": 0.2}, client)
    finally:
        release.set()


def recording(
    fail_on: str | None = None,
) -> tuple[Callable[[list[str]], np.ndarray], list[list[str]], threading.Event, threading.Event]:
    """A model whose first call waits for `release`; every call's texts are recorded."""
    calls: list[list[str]] = []
    started, release = threading.Event(), threading.Event()

    def predict(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        if len(calls) == 1:
            started.set()
            release.wait(10)
        if fail_on in texts:
            raise ValueError("bad text")
        return np.array([[float(len(t))] for t in texts])

    return predict, calls, started, release


async def _while_busy(
    b: MicroBatcher, started: threading.Event, release: threading.Event, later: list[list[str]]
) -> list[asyncio.Future[np.ndarray]]:
    """Submit one request, then `later` while the model is busy with it; then release it."""
    first = b.submit(["x"])
    while not started.is_set():
        await asyncio.sleep(0.005)
    futures = [first, *(b.submit(t) for t in later)]
    await asyncio.sleep(0.02)
    release.set()
    await asyncio.gather(*futures, return_exceptions=True)
    return futures


def test_batcher_runs_a_lone_request_at_once_and_batches_what_queues_behind_it() -> None:
    predict, calls, started, release = recording()

    async def go() -> None:
        b = MicroBatcher(predict, max_batch=3)  # max_wait_ms=0: never waits to fill
        await b.start()
        try:
            futures = await _while_busy(b, started, release, [["ab"], ["abc"], ["d", "e"]])
            assert [f.result().ravel().tolist() for f in futures] == [[1], [2], [3], [1, 1]]
        finally:
            await b.stop()

    asyncio.run(go())
    assert calls == [["x"], ["ab", "abc"], ["d", "e"]]  # by arrival, at most 3 texts a call


def test_batcher_drops_cancelled_requests_and_isolates_a_failing_one() -> None:
    predict, calls, started, release = recording(fail_on="boom")

    async def go() -> None:
        b = MicroBatcher(predict, max_batch=8)
        await b.start()
        try:
            first = b.submit(["x"])
            while not started.is_set():
                await asyncio.sleep(0.005)
            gone, ok, bad, ok2 = (b.submit([t]) for t in ("gone", "ok", "boom", "fine"))
            gone.cancel()  # a client that timed out: no model call for it
            assert b.waiting == 4
            release.set()
            assert (await ok).tolist() == [[2.0]] and (await ok2).tolist() == [[4.0]]
            with pytest.raises(ValueError, match="bad text"):
                await bad
            await first
        finally:
            await b.stop()

    asyncio.run(go())
    assert ["gone"] not in calls and all("gone" not in c for c in calls)
    assert calls[1] == ["ok", "boom", "fine"]  # the shared call failed, then one by one
    assert calls[2:] == [["ok"], ["boom"], ["fine"]]


def test_batcher_queue_counts_texts() -> None:
    predict, _, started, release = recording()

    async def go() -> None:
        b = MicroBatcher(predict, max_batch=1, max_queue=3)
        await b.start()
        try:
            first = b.submit(["x"])
            while not started.is_set():
                await asyncio.sleep(0.005)
            waiting = b.submit(["a", "b"])
            with pytest.raises(QueueFullError):
                b.submit(["c", "d"])  # 2 + 2 texts > 3
            small = b.submit(["e"])  # 2 + 1 fits
            release.set()
            await asyncio.gather(first, waiting, small)
        finally:
            release.set()
            await b.stop()

    asyncio.run(go())


@pytest.mark.parametrize(
    "flag", [["--workers", "0"], ["--max-queue", "0"], ["--read-timeout", "0"]]
)
def test_cli_refuses_bad_server_flags_in_one_line(
    export_dir: Path, flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(export_dir), "--port", "0", *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: " + flag[0]) and "\n" not in err


def test_a_request_that_breaks_the_model_fails_alone_with_500(export_dir: Path) -> None:
    predictor = Predictor.load(export_dir, threads=1)
    fast = predictor.predict_proba

    def fragile(texts: list[str]) -> np.ndarray:
        if "boom" in texts:
            raise RuntimeError("secret internal detail")
        return fast(texts)

    predictor.predict_proba = fragile  # type: ignore[method-assign]

    async def client(port: int) -> list[tuple[int, dict[str, Any]]]:
        texts = ["fine", "boom", "also fine", "ok"]
        return await asyncio.gather(*(ask(port, predict_request(body([t]))) for t in texts))

    answers = serve_then(predictor, {}, client)
    assert [a[0] for a in answers] == [200, 500, 200, 200]
    assert answers[1][1] == {"detail": "internal error; see the server log"}


def test_a_client_that_does_not_read_its_answers_cannot_pile_them_up(export_dir: Path) -> None:
    """60,000 pipelined requests, none read for a while: the server stops reading them once
    its write buffer is full, then answers every one when the client reads."""
    predictor = Predictor.load(export_dir, threads=1)
    n = 60_000

    async def go() -> tuple[int, int]:
        sock = bind(HOST, 0)
        server, service = await open_server(predictor, ServeSettings(), sock)
        try:
            conn = await Conn.open(HOST, int(sock.getsockname()[1]))
            conn.writer.write(b"GET /health HTTP/1.1\r\nhost: t\r\n\r\n" * n)
            await asyncio.sleep(0.5)
            (c,) = service.connections
            assert c.transport is not None
            held = c.transport.get_write_buffer_size() + len(c.buf)
            answered = 0
            for _ in range(n):
                status, _, _ = await conn.answer(10)
                answered += status == 200
            conn.close()
            return held, answered
        finally:
            await close_server(server, service)

    held, answered = asyncio.run(go())
    assert answered == n
    assert held < 1_000_000  # ~18 MB of answers and 2 MB of requests, had it read them all


def test_expect_100_continue_as_curl_sends_for_larger_bodies(export_dir: Path) -> None:
    predictor = Predictor.load(export_dir, threads=1)
    doc = body(["a fine film"] * 100)
    raw = predict_request(doc, "expect: 100-continue\r\n")
    head_end = raw.index(b"\r\n\r\n") + 4

    async def client(port: int) -> None:
        conn = await Conn.open(HOST, port)
        conn.writer.write(raw[:head_end])
        assert (await conn.answer(5))[0] == 100  # go on
        conn.writer.write(raw[head_end:])
        status, payload, _ = await conn.answer(5)
        assert status == 200 and len(json.loads(payload)["predictions"]) == 100
        conn.close()
        too_big = await ask(port, predict_request(body(["x" * 101]), "expect: 100-continue\r\n"))
        assert too_big[0] == 413

    serve_then(predictor, LIMITS | {"max_texts": 100}, client)
