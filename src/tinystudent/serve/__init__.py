"""HTTP serving of an exported model (the optional `serve` extra: FastAPI + uvicorn).

`tinystudent serve EXPORT_DIR` binds 127.0.0.1 by default; the app itself is
`tinystudent.serve.app.create_app(predictor, settings)` for embedding or tests.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from tinystudent.errors import TinyStudentError
from tinystudent.serve.batcher import MicroBatcher, QueueFullError
from tinystudent.serve.settings import ServeSettings

log = logging.getLogger(__name__)
INSTALL_HINT = "serving needs FastAPI and uvicorn: pip install 'tinystudent[serve]'"


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
    **limits: Any,
) -> None:
    """Load the export in `model_dir` and serve it until interrupted; `limits` are
    `ServeSettings` fields (max_texts, max_chars, timeout_s, ...)."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise TinyStudentError(INSTALL_HINT) from e
    from tinystudent.inference import Predictor
    from tinystudent.serve.app import create_app

    try:
        cfg = ServeSettings(**limits)
    except ValueError as e:
        raise TinyStudentError(str(e)) from e
    if not _is_loopback(host):
        log.warning("binding %s: the server has no authentication; put it behind a proxy", host)
    app = create_app(Predictor.load(model_dir, threads=threads), cfg)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_keep_alive=5,
        limit_concurrency=cfg.max_queue,  # past it uvicorn answers 503 at once
    )


__all__ = ["INSTALL_HINT", "MicroBatcher", "QueueFullError", "ServeSettings", "serve"]
