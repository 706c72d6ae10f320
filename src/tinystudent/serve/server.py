"""Running the built-in server: one process, or `workers` forked processes on one socket.

The parent binds the socket (so a port in use is one clear error, once), then forks the
workers; each loads its own onnxruntime session and accepts from the shared socket. A worker
that dies is replaced; a worker that keeps dying at start-up stops the server with its error.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import wait
from typing import Any

from tinystudent.errors import TinyStudentError
from tinystudent.serve.batcher import MicroBatcher
from tinystudent.serve.http import Service
from tinystudent.serve.settings import ServeSettings

log = logging.getLogger(__name__)
DRAIN_S = 5.0  # on SIGTERM, answers in progress get this long to finish
QUICK_DEATHS = 3  # workers dying within START_S of their start: give up


def describe(predictor: Any, cfg: ServeSettings) -> dict[str, Any]:
    """GET /metadata: the model card's facts and the limits a client must respect."""
    card = predictor.card
    return {
        "name": card.get("name"),
        "kind": predictor.meta.get("kind"),
        "variant": predictor.variant,
        "labels": predictor.label_names,
        "multi_label": getattr(predictor, "thresholds", None) is not None,
        "thresholds": getattr(predictor, "thresholds", None),
        "teacher": card.get("teacher"),
        "data": card.get("data"),
        "metrics": card.get("metrics", {}),
        "size_bytes": card.get("size_bytes"),
        "latency": card.get("latency"),
        "limits": {
            "max_texts": cfg.max_texts,
            "max_chars": cfg.max_chars,
            "max_body_bytes": cfg.max_body_bytes,
            "timeout_s": cfg.timeout_s,
        },
    }


async def open_server(
    predictor: Any, cfg: ServeSettings, sock: socket.socket
) -> tuple[asyncio.Server, Service]:
    """Start answering on `sock` in the running loop (tests and the workers use this)."""
    batcher = MicroBatcher(predictor.predict_proba, cfg.max_batch, cfg.max_wait_ms, cfg.max_queue)
    await batcher.start()
    meta = describe(predictor, cfg)  # read once: the export does not change under a server

    def info(path: str) -> dict[str, Any]:
        if path == "/metadata":
            return meta
        return {
            "status": "ok",
            "kind": meta["kind"],
            "variant": meta["variant"],
            "waiting": batcher.waiting,
            "batches": batcher.batches,
            "texts": batcher.texts_done,
            "model_cpu_s": batcher.model_cpu_s,
            "pid": os.getpid(),
            "connections": len(service.connections),
            "held_bytes": service.pending_bytes,
            "answers": {str(k): v for k, v in sorted(service.counts.items())},
        }

    service = Service(
        batcher, predictor.label_names, cfg, info, getattr(predictor, "thresholds", None)
    )
    server = await asyncio.get_running_loop().create_server(service.protocol, sock=sock)
    return server, service


async def close_server(server: asyncio.Server, service: Service) -> None:
    """Stop accepting, let answers in progress finish (bounded), close the rest."""
    server.close()
    deadline = time.monotonic() + DRAIN_S
    while any(c.busy for c in service.connections) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    for c in list(service.connections):
        c._close()
    await service.batcher.stop()


async def _serve_until_signal(predictor: Any, cfg: ServeSettings, sock: socket.socket) -> None:
    server, service = await open_server(predictor, cfg, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await close_server(server, service)


def _worker(model_dir: str, threads: int | None, cfg: ServeSettings, sock: socket.socket) -> None:
    from tinystudent.inference import Predictor

    try:
        predictor = Predictor.load(model_dir, threads=threads)
    except TinyStudentError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    asyncio.run(_serve_until_signal(predictor, cfg, sock))


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise TinyStudentError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def run(
    model_dir: str, host: str, port: int, threads: int | None, cfg: ServeSettings, workers: int
) -> None:
    """Serve until SIGINT/SIGTERM; `workers` processes share the socket."""
    if workers < 1:
        raise TinyStudentError("--workers: must be >= 1")
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    plural = "es" if workers > 1 else ""
    print(f"serving {model_dir} on http://{host}:{bound} ({workers} process{plural})",
          file=sys.stderr, flush=True)  # fmt: skip
    if workers == 1:
        _worker(model_dir, threads, cfg, sock)
        return
    _supervise(model_dir, threads, cfg, sock, workers)


def _supervise(
    model_dir: str, threads: int | None, cfg: ServeSettings, sock: socket.socket, workers: int
) -> None:
    ctx = multiprocessing.get_context("fork")  # the socket is inherited, nothing re-imported
    started: dict[Any, float] = {}

    def spawn() -> None:
        p = ctx.Process(target=_worker, args=(model_dir, threads, cfg, sock), daemon=False)
        p.start()
        started[p] = time.monotonic()

    for _ in range(workers):
        spawn()
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    quick = 0
    try:
        while not stopping:
            wait([p.sentinel for p in started], timeout=0.5)
            for p in [p for p in started if not p.is_alive()]:
                lived = time.monotonic() - started.pop(p)
                quick = quick + 1 if lived < 10 else 0
                if quick >= QUICK_DEATHS:
                    raise TinyStudentError(
                        f"workers keep exiting at start-up (last exit code {p.exitcode})"
                    )
                if not stopping:
                    log.warning("worker %s exited with %s; starting another", p.pid, p.exitcode)
                    spawn()
    finally:
        for p in started:
            if p.is_alive():
                p.terminate()
        for p in started:
            p.join(DRAIN_S + 2)
            if p.is_alive():
                p.kill()
        sock.close()
