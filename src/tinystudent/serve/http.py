"""The built-in HTTP/1.1 server behind `tinystudent serve`: one asyncio protocol, three routes.

Why not uvicorn + FastAPI: on a 0.26 ms model their per-request cost (h11 parsing, routing,
middleware, pydantic) was most of the latency, and uvicorn has no deadline for a request's
head, so slow clients hold connections forever. Here every resource a client can make the
server hold is bounded (see `ServeSettings`): header bytes (431), body bytes (413), time to
send a request (408), open connections and body bytes held at once (503), and texts waiting
for the model (503). Bodies need a Content-Length (411 otherwise); one request at a time per
connection (keep-alive; past 64 KiB read ahead while a request is answered, reading
pauses, so pipelining cannot buffer without bound). An error that leaves the stream unusable
answers and closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinystudent.serve.batcher import MicroBatcher, QueueFullError
from tinystudent.serve.handling import RequestError, error_body, parse_predict, render_predictions
from tinystudent.serve.settings import ServeSettings

log = logging.getLogger(__name__)

REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
    422: "Unprocessable Content", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip
ROUTES = {"/predict": "POST", "/health": "GET", "/metadata": "GET"}
PIPELINE_BYTES = 64 * 1024  # read ahead while answering, up to this, then pause reading
LINGER_S = 1.0  # after an error that closes, read and drop what the client still sends


@dataclass
class Head:
    method: str
    path: str
    keep_alive: bool
    length: int
    expect_continue: bool


def parse_head(raw: bytes) -> Head:
    """The request line and the headers that matter; a malformed head is a 400 (411 for a
    body without a Content-Length)."""
    try:
        lines = raw.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise RequestError(400, "malformed request line") from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise RequestError(400, f"unsupported protocol {version[:16]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise RequestError(400, "malformed header line")
        name, value = name.lower(), value.strip()
        if name in headers and name == "content-length" and headers[name] != value:
            raise RequestError(400, "conflicting Content-Length headers")
        headers[name] = value
    if "transfer-encoding" in headers:
        raise RequestError(411, "chunked bodies are not supported; send a Content-Length")
    length = headers.get("content-length", "0")
    if not length.isdigit() or len(length) > 18:
        raise RequestError(400, "invalid Content-Length")
    connection = headers.get("connection", "").lower()
    keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    path = target.split("?", 1)[0]
    if method == "POST" and "content-length" not in headers:
        raise RequestError(411, "a POST needs a Content-Length")
    expect = headers.get("expect", "").lower() == "100-continue"
    return Head(method, path, keep, int(length), expect)


def response(
    status: int, body: bytes, keep_alive: bool, extra: dict[str, str] | None = None
) -> bytes:
    head = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    if not keep_alive:
        head.append("connection: close")
    for k, v in (extra or {}).items():
        head.append(f"{k}: {v}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class Service:
    """What the connections share: the settings, the batcher, the budgets and the routes."""

    def __init__(
        self,
        batcher: MicroBatcher,
        labels: list[str],
        cfg: ServeSettings,
        info: Callable[[str], dict[str, Any]],
        thresholds: list[float] | None = None,
    ) -> None:
        self.batcher, self.labels, self.cfg, self.info = batcher, labels, cfg, info
        self.thresholds = thresholds  # a multi-label model answers label sets
        self.connections: set[Connection] = set()
        self.pending_bytes = 0
        self.counts: dict[int, int] = {}  # answers by status, for /health

    def protocol(self) -> Connection:
        return Connection(self)

    async def predict(self, body: bytes) -> bytes:
        texts = parse_predict(body, self.cfg)
        try:
            future = self.batcher.submit(texts)
        except QueueFullError:
            raise RequestError(
                503, "server busy: too many texts waiting; retry", {"retry-after": "1"}
            ) from None
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                probs = await future
        except TimeoutError:
            raise RequestError(504, f"request took longer than {self.cfg.timeout_s:g} s") from None
        finally:
            future.cancel()  # a no-op once answered; otherwise it leaves the queue
        return render_predictions(probs, self.labels, self.thresholds)


class Connection(asyncio.Protocol):
    """One client connection: read a head, then its body, answer, repeat."""

    def __init__(self, service: Service) -> None:
        self.svc = service
        self.cfg = service.cfg
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.head: Head | None = None
        self.reserved = 0  # bytes of pending_bytes this request holds
        self.busy = False  # answering a request: later input waits in the buffer
        self.closing = False
        self.eof = False
        self.paused = False  # reading paused by us (see _flow)
        self.write_blocked = False  # the client is not reading its answers
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    # ---- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.svc.connections.add(self)
        if len(self.svc.connections) > self.cfg.max_connections:
            self._fail(RequestError(503, "server busy: too many connections", {"retry-after": "1"}))
            return
        self._arm(self.cfg.keepalive_s, self._idle)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # lingering: drop it
        self.buf += data
        if not self.busy:
            self._advance()
        self._flow()

    def pause_writing(self) -> None:
        self.write_blocked = True  # answers pile up unread: stop taking requests
        self._flow()
        self._arm(self.cfg.read_timeout_s, self._close, "write")  # ... for so long at most

    def resume_writing(self) -> None:
        self.write_blocked = False
        self._disarm()
        self._flow()
        self._advance()
        if not (self.busy or self.buf or self.closing or self.timer):
            self._arm(self.cfg.keepalive_s, self._idle)

    def eof_received(self) -> bool | None:
        self.eof = True
        if not self.busy:
            self._close()
        return True  # keep the write side open for an answer in progress

    def connection_lost(self, exc: Exception | None) -> None:
        self.svc.connections.discard(self)
        self._release()
        if self.timer:
            self.timer.cancel()
        if self.task and not self.task.done():
            self.task.cancel()
        self.closing = True

    def _flow(self) -> None:
        """Read only while it cannot pile up: a request being answered may have at most
        PIPELINE_BYTES read ahead, and a client that does not read its answers (the write
        buffer past asyncio's high-water mark) gets no more requests read."""
        if self.closing or self.transport is None:
            return
        hold = self.write_blocked or (self.busy and len(self.buf) > PIPELINE_BYTES)
        if hold and not self.paused:
            self.transport.pause_reading()
        elif not hold and self.paused:
            self.transport.resume_reading()
        self.paused = hold

    # ---- request reading
    def _advance(self) -> None:
        """Take complete requests from the buffer; answer them one at a time."""
        try:
            while not self.busy and not self.closing and not self.write_blocked:
                if self.head is None and not self._read_head():
                    return
                assert self.head is not None
                if len(self.buf) < self.head.length:
                    return
                body = bytes(self.buf[: self.head.length])
                del self.buf[: self.head.length]
                head, self.head = self.head, None
                self._dispatch(head, body)
        except RequestError as e:
            self._fail(e)

    def _read_head(self) -> bool:
        if not self.buf:
            return False
        if self.timer_kind != "read":  # the deadline runs from a request's first byte
            self._arm(self.cfg.read_timeout_s, self._too_slow, "read")
        while self.buf[:2] == b"\r\n":  # stray line ends between requests are allowed
            del self.buf[:2]
        end = self.buf.find(b"\r\n\r\n", 0, self.cfg.max_header_bytes + 4)
        if end < 0:
            if len(self.buf) > self.cfg.max_header_bytes:
                raise RequestError(431, f"request head over {self.cfg.max_header_bytes} bytes")
            return False
        head = parse_head(bytes(self.buf[:end]))
        del self.buf[: end + 4]
        self._admit(head)
        self.head = head
        if head.expect_continue and len(self.buf) < head.length:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _admit(self, head: Head) -> None:
        """Refuse before reading a body: unknown routes, oversize, over the shared budget."""
        want = ROUTES.get(head.path)
        if want is None:
            raise RequestError(404, "Not Found")
        if head.method != want:
            raise RequestError(405, "Method Not Allowed", {"allow": want})
        if head.length > self.cfg.max_body_bytes:
            raise RequestError(413, f"request body over {self.cfg.max_body_bytes} bytes")
        if self.svc.pending_bytes + head.length > self.cfg.max_pending_bytes:
            raise RequestError(
                503, "server busy: too many request bytes held", {"retry-after": "1"}
            )
        self.reserved = head.length
        self.svc.pending_bytes += head.length

    def _dispatch(self, head: Head, body: bytes) -> None:
        self._disarm()
        if head.path == "/predict":
            self.busy = True
            self.task = asyncio.ensure_future(self._answer_predict(body, head.keep_alive))
        else:
            self._release()  # a GET may carry a body; it is read and ignored
            self._reply(200, json.dumps(self.svc.info(head.path)).encode(), head.keep_alive)

    async def _answer_predict(self, body: bytes, keep_alive: bool) -> None:
        try:
            payload = await self.svc.predict(body)
        except RequestError as e:
            self._release()
            self._reply(e.status, error_body(e.message), keep_alive, e.headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error on /predict")
            self._release()
            self._reply(500, error_body("internal error; see the server log"), keep_alive)
        else:
            self._release()
            self._reply(200, payload, keep_alive)
        self.busy = False
        if self.eof:
            self._close()
        elif not self.closing:
            self._flow()
            self._advance()

    # ---- answers, timers, closing
    def _reply(
        self, status: int, body: bytes, keep_alive: bool, extra: dict[str, str] | None = None
    ) -> None:
        self.svc.counts[status] = self.svc.counts.get(status, 0) + 1
        self._write(response(status, body, keep_alive, extra))
        if not keep_alive:
            self._linger()
        elif not self.buf:
            self._arm(self.cfg.keepalive_s, self._idle)

    def _fail(self, e: RequestError) -> None:
        """An answer after which the stream cannot be trusted: reply, then close."""
        self._release()
        self.head = None
        self._reply(e.status, error_body(e.message), False, e.headers)

    def _write(self, data: bytes) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(data)

    def _release(self) -> None:
        self.svc.pending_bytes -= self.reserved
        self.reserved = 0

    timer_kind = ""

    def _arm(self, seconds: float, callback: Callable[[], None], kind: str = "idle") -> None:
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(seconds, callback)
        self.timer_kind = kind

    def _disarm(self) -> None:
        if self.timer:
            self.timer.cancel()
        self.timer, self.timer_kind = None, ""

    def _idle(self) -> None:
        self._close()

    def _too_slow(self) -> None:
        self._fail(RequestError(408, f"request not received within {self.cfg.read_timeout_s:g} s"))

    def _linger(self) -> None:
        """Half-close and drop further input for a moment, so that the client reads the answer
        instead of a reset caused by unread bytes."""
        self.closing = True
        self.buf.clear()
        assert self.transport is not None
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self._arm(LINGER_S, self._close, "linger")

    def _close(self) -> None:
        self.closing = True
        self._disarm()
        if self.transport:
            self.transport.close()
