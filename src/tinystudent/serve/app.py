"""A FastAPI app with the built-in server's routes and limits, for an existing ASGI stack.

`tinystudent serve` does not use it (see `tinystudent.serve.http` for why); it shares the
request parsing (`handling`), the micro-batcher and /metadata with the built-in server.

Requests are bounded before any work is done (body bytes, number of texts, characters per
text: 413; malformed JSON or wrong types: 422), bounded in time (504), and errors answer with
one JSON line `{"detail": ...}`, never a stack trace (those go to the server's log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tinystudent.inference import Predictor
from tinystudent.serve.batcher import MicroBatcher, QueueFullError
from tinystudent.serve.handling import RequestError, parse_predict, render_predictions
from tinystudent.serve.server import describe
from tinystudent.serve.settings import ServeSettings

log = logging.getLogger(__name__)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    texts: list[str] = Field(min_length=1, description="texts to classify")


class LabelScore(BaseModel):
    label: str
    score: float
    probs: dict[str, float]


class PredictResponse(BaseModel):
    predictions: list[LabelScore]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _validation_message(e: RequestValidationError) -> str:
    """The first problem, as `field: message` (the input itself is not echoed back)."""
    first = e.errors()[0]
    where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> FastAPI:
    """An app serving `predictor`; its micro-batcher runs for the app's lifespan."""
    cfg = settings or ServeSettings()
    batcher = MicroBatcher(predictor.predict_proba, cfg.max_batch, cfg.max_wait_ms, cfg.max_queue)
    labels = predictor.label_names
    thresholds = getattr(predictor, "thresholds", None)  # multi-label: answers label sets
    meta = describe(predictor, cfg)  # read once: the export does not change under a server

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="tinystudent",
        description=f"A distilled {predictor.meta.get('kind')} text classifier.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.predictor = predictor

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(e))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def crashed(request: Request, e: Exception) -> JSONResponse:
        log.error("unhandled error on %s", request.url.path, exc_info=e)
        return _error(500, "internal error; see the server log")

    async def _predict(request: Request) -> Response:
        body = await _read_body(request, cfg.max_body_bytes)
        texts = parse_predict(body, cfg)
        try:
            future = batcher.submit(texts)
        except QueueFullError:
            raise RequestError(503, "server busy: too many texts waiting; retry") from None
        try:
            probs = await future
        finally:
            future.cancel()  # a timed-out request leaves the queue
        return Response(
            render_predictions(probs, labels, thresholds), media_type="application/json"
        )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
            }
        },
    )
    async def predict(request: Request) -> Any:
        """Labels and probabilities for `{"texts": [...]}`, in input order."""
        try:
            return await asyncio.wait_for(_predict(request), cfg.timeout_s)
        except RequestError as e:
            return _error(e.status, e.message, e.headers)
        except asyncio.TimeoutError:
            return _error(504, f"request took longer than {cfg.timeout_s:g} s")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "kind": predictor.meta.get("kind"),
            "variant": predictor.variant,
            "waiting": batcher.waiting,
            "batches": batcher.batches,
        }

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        return meta

    return app
