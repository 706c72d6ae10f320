"""A bounded load test for a running server: valid traffic with hostile traffic mixed in.

`clients` connections send one valid text per request for at most `seconds` and
`max_requests`; meanwhile `bad_clients` send, one fresh connection each, requests that must
be refused (malformed, wrong types, over each limit), `slow_clients` trickle a request head
or body a few bytes at a time (slowloris; the server must answer 408), and a flood of
`flood` connections each sends one valid request at once (past the connection limit: 503).
Everything stops by itself: every read has a deadline. The client speaks raw HTTP/1.1 on
asyncio streams, so that the load generator's own cost stays small next to the server's.

    from tinystudent.serve.loadtest import LoadSpec, run_load
    report = asyncio.run(run_load("127.0.0.1", 8000, texts, LoadSpec(seconds=5)))
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class LoadSpec:
    clients: int = 16
    seconds: float = 20.0
    max_requests: int = 20_000
    bad_clients: int = 2
    slow_clients: int = 2
    slow_interval_s: float = 0.5
    flood: int = 0
    max_texts: int = 256  # the server's limits, to build requests just past them
    max_chars: int = 10_000
    read_timeout_s: float = 10.0  # the server's: a slow client waits this long plus a margin


def predict_request(body: bytes, extra: str = "") -> bytes:
    head = f"POST /predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n{extra}"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def huge_head(length: int) -> bytes:
    """A head declaring `length` body bytes (the client then sends only part of them)."""
    return f"POST /predict HTTP/1.1\r\nhost: t\r\ncontent-length: {length}\r\n\r\n".encode()


def _json(texts: list[str]) -> bytes:
    return json.dumps({"texts": texts}).encode()


def bad_requests(spec: LoadSpec) -> dict[str, tuple[bytes, int]]:
    """Each hostile request and the status it must get."""
    too_big = spec.max_texts * (4 * spec.max_chars + 16) + 1025
    return {
        "malformed JSON": (predict_request(b'{"texts": ["a",'), 422),
        "wrong type": (predict_request(b'{"texts": "one string"}'), 422),
        "unknown field": (predict_request(b'{"texts": ["a"], "x": 1}'), 422),
        "lone surrogate": (predict_request(b'{"texts": ["\\ud800 x"]}'), 422),
        "deep nesting": (predict_request(b"[" * min(100_000, too_big - 1100)), 422),
        "too many texts": (predict_request(_json(["a"] * (spec.max_texts + 1))), 413),
        "text too long": (predict_request(_json(["a" * (spec.max_chars + 1)])), 413),
        "body too large": (huge_head(too_big) + b'{"texts": ["' + b"a" * 65_536, 413),
        "head too large": (predict_request(_json(["a"]), f"x-pad: {'p' * 20_000}\r\n"), 431),
    }


class Conn:
    """One keep-alive connection; `ask` sends a request and reads its answer (or raises)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def answer(self, timeout: float) -> tuple[int, bytes, bool]:
        """(status, body, server closes)."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(HEAD_END)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = dict(ln.lower().split(": ", 1) for ln in lines[1:] if ": " in ln)
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, body, headers.get("connection") == "close"

    async def ask(self, raw: bytes, timeout: float = 30.0) -> tuple[int, bytes, bool]:
        self.writer.write(raw)
        await self.writer.drain()
        return await self.answer(timeout)

    def close(self) -> None:
        self.writer.close()


def _pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.valid_errors: dict[str, int] = {}
        self.bad: dict[str, dict[str, Any]] = {}
        self.sent = 0
        self.quiet = False  # set around the flood: no fresh bad connections then

    def valid_error(self, kind: str) -> None:
        self.valid_errors[kind] = self.valid_errors.get(kind, 0) + 1

    def bad_result(self, kind: str, expected: int | set[int], got: str) -> None:
        row = self.bad.setdefault(kind, {"expected": expected, "got": {}})
        row["got"][got] = row["got"].get(got, 0) + 1


async def _valid_client(
    host: str, port: int, texts: list[str], k: int, spec: LoadSpec, tally: _Tally, deadline: float
) -> None:
    conn: Conn | None = None
    while time.perf_counter() < deadline and tally.sent < spec.max_requests:
        raw = predict_request(_json([texts[(tally.sent * 7919 + k) % len(texts)]]))
        tally.sent += 1
        t0 = time.perf_counter()
        try:
            conn = conn or await Conn.open(host, port)
            status, _, closes = await conn.ask(raw)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
            tally.valid_error(type(e).__name__)
            if conn:
                conn.close()
            conn = None
            continue
        if status == 200:
            tally.latencies.append((time.perf_counter() - t0) * 1000)
        else:
            tally.valid_error(str(status))
        if closes:
            conn.close()
            conn = None
    if conn:
        conn.close()


async def _one_shot(
    host: str,
    port: int,
    raw: bytes,
    timeout: float,
    trickle: Callable[[Conn], Awaitable[None]] | None = None,
) -> str:
    """The status a fresh connection gets for `raw` (or what went wrong, by name); `trickle`
    keeps writing while the answer is awaited."""
    conn: Conn | None = None
    feeder: asyncio.Future[None] | None = None
    try:
        conn = await Conn.open(host, port)
        conn.writer.write(raw)
        if trickle is not None:
            feeder = asyncio.ensure_future(trickle(conn))
        status, _, _ = await conn.answer(timeout)
        return str(status)
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
        return type(e).__name__
    finally:
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        if conn:
            conn.close()


async def _bad_client(
    host: str, port: int, spec: LoadSpec, tally: _Tally, deadline: float, k: int
) -> None:
    kinds = list(bad_requests(spec).items())
    i = k
    while time.perf_counter() < deadline:
        if tally.quiet:
            await asyncio.sleep(0.05)
            continue
        kind, (raw, expected) = kinds[i % len(kinds)]
        i += 1
        tally.bad_result(kind, expected, await _one_shot(host, port, raw, 30.0))


def _trickle(data: bytes, spec: LoadSpec) -> Callable[[Conn], Awaitable[None]]:
    async def feed(conn: Conn) -> None:
        """A byte per interval, for at most the server's read timeout plus a margin."""
        give_up = time.perf_counter() + spec.read_timeout_s + 5
        for i in range(len(data)):
            if time.perf_counter() > give_up:
                return
            conn.writer.write(data[i : i + 1])
            await conn.writer.drain()
            await asyncio.sleep(spec.slow_interval_s)

    return feed


async def _slow_client(
    host: str, port: int, spec: LoadSpec, tally: _Tally, deadline: float, k: int
) -> None:
    """Slowloris, bounded: a head, or a body after a prompt head, a byte at a time."""
    body = _json(["a slow one " * 40])
    head = predict_request(body)[: -len(body)]
    plans = {"slow head": (b"", head + body), "slow body": (head, body)}
    i = k
    while time.perf_counter() < deadline:
        if tally.quiet:
            await asyncio.sleep(0.05)
            continue
        kind = ("slow head", "slow body")[i % 2]
        i += 1
        at_once, slowly = plans[kind]
        got = await _one_shot(host, port, at_once, spec.read_timeout_s + 10, _trickle(slowly, spec))
        tally.bad_result(kind, 408, got)


async def _flood(host: str, port: int, texts: list[str], spec: LoadSpec, tally: _Tally) -> None:
    """Past the connection limit while the valid clients go on; the bad ones pause, so that
    a 503 meant for the flood cannot land on a request that must get its own 4xx."""
    raw = predict_request(_json(texts[:1]))
    tally.quiet = True
    await asyncio.sleep(0.5)  # bad requests under way finish (slow ones hold their connection)
    try:
        got = await asyncio.gather(*(_one_shot(host, port, raw, 30.0) for _ in range(spec.flood)))
    finally:
        tally.quiet = False
    for g in got:
        tally.bad_result("connection flood", {200, 503}, g)


async def run_load(host: str, port: int, texts: list[str], spec: LoadSpec) -> dict[str, Any]:
    """Run the mix; a report of throughput, latency and every answer by kind."""
    tally = _Tally()
    start = time.perf_counter()
    deadline = start + spec.seconds
    conns = [
        _valid_client(host, port, texts, k, spec, tally, deadline) for k in range(spec.clients)
    ]
    bad = [_bad_client(host, port, spec, tally, deadline, k) for k in range(spec.bad_clients)]
    slow = [_slow_client(host, port, spec, tally, deadline, k) for k in range(spec.slow_clients)]

    async def flood_later() -> None:
        if spec.flood:
            await asyncio.sleep(spec.seconds / 2)
            await _flood(host, port, texts, spec, tally)

    await asyncio.gather(*conns, *bad, *slow, flood_later())
    elapsed = time.perf_counter() - start
    valid_time = min(elapsed, spec.seconds) if tally.sent < spec.max_requests else elapsed
    for row in tally.bad.values():
        want = row["expected"]
        want = want if isinstance(want, set) else {want}
        row["unexpected"] = sum(
            n for g, n in row["got"].items() if not g.isdigit() or int(g) not in want
        )
        row["expected"] = sorted(want) if len(want) > 1 else next(iter(want))
    return {
        "clients": spec.clients,
        "seconds": elapsed,
        "valid_requests": tally.sent,
        "ok": len(tally.latencies),
        "valid_errors": sum(tally.valid_errors.values()),
        "valid_error_kinds": tally.valid_errors,
        "throughput_rps": len(tally.latencies) / valid_time,
        "p50_ms": _pct(tally.latencies, 0.50),
        "p99_ms": _pct(tally.latencies, 0.99),
        "max_ms": max(tally.latencies, default=None),
        "bad_requests": sum(sum(r["got"].values()) for r in tally.bad.values()),
        "bad_unexpected": sum(r["unexpected"] for r in tally.bad.values()),
        "bad_by_kind": tally.bad,
    }


async def idle_latency(host: str, port: int, texts: list[str], n: int) -> dict[str, Any]:
    """One client, one request at a time: what a lone request costs end to end, and what a
    `GET /health` costs (no model: the HTTP path and the loopback alone)."""
    conn = await Conn.open(host, port)
    lat, health = [], []
    try:
        for i in range(n):
            raw = predict_request(_json([texts[i % len(texts)]]))
            t0 = time.perf_counter()
            status, _, _ = await conn.ask(raw)
            t1 = time.perf_counter()
            if status == 200:
                lat.append((t1 - t0) * 1000)
            status, _, _ = await conn.ask(b"GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
            if status == 200:
                health.append((time.perf_counter() - t1) * 1000)
    finally:
        conn.close()
    return {
        "requests": n,
        "ok": len(lat),
        "p50_ms": _pct(lat, 0.5),
        "p99_ms": _pct(lat, 0.99),
        "health_p50_ms": _pct(health, 0.5),
    }
