"""HTTP serving of an exported model.

`tinystudent serve EXPORT_DIR` runs the built-in asyncio server (`tinystudent.serve.http`;
needs only the light runtime) on 127.0.0.1 by default, in one process or `--workers N`.
For embedding in an existing ASGI stack there is also a FastAPI app with the same routes and
limits, `tinystudent.serve.app.create_app(predictor, settings)` (the `serve` extra).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from tinystudent.errors import TinyStudentError
from tinystudent.serve.batcher import MicroBatcher, QueueFullError
from tinystudent.serve.settings import ServeSettings

log = logging.getLogger(__name__)
INSTALL_HINT = "the FastAPI app needs FastAPI: pip install 'tinystudent[serve]'"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    model_dir: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int | None = None,
    workers: int = 1,
    **limits: Any,
) -> None:
    """Load the export in `model_dir` and serve it until SIGINT/SIGTERM; `limits` are
    `ServeSettings` fields (max_texts, max_chars, timeout_s, max_queue, ...)."""
    from tinystudent.inference.predictor import _import_ort, read_export_meta
    from tinystudent.serve import server

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise TinyStudentError(f"--workers: must be a whole number >= 1, got {workers!r}")
    try:
        cfg = ServeSettings(**limits)
    except ValueError as e:
        raise TinyStudentError(str(e)) from e
    _import_ort()
    read_export_meta(model_dir)  # a wrong directory fails here, once, not in every worker
    if not _is_loopback(host):
        log.warning("binding %s: the server has no authentication; put it behind a proxy", host)
    server.run(model_dir, host, port, threads, cfg, workers)


__all__ = ["INSTALL_HINT", "MicroBatcher", "QueueFullError", "ServeSettings", "serve"]
