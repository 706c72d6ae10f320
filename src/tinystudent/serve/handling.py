"""What a /predict request means, independent of the HTTP stack: body in, texts or one error out;
probabilities in, response bytes out.

Both servers (the built-in asyncio one and the FastAPI app) call these, so a limit means the
same thing everywhere. Validation is plain Python rather than a pydantic model: it costs a few
microseconds per request instead of tens, and it sees hostile JSON (deep nesting, lone
surrogates) that would otherwise fail later, inside a batch shared with other requests.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tinystudent.serve.settings import ServeSettings


class RequestError(Exception):
    """An answer other than 200, with the one-line message the client sees."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise RequestError(422, f"body: Invalid JSON: {e.msg} at position {e.pos}") from None
    except UnicodeDecodeError:
        raise RequestError(422, "body: Invalid JSON: not UTF-8") from None
    except RecursionError:  # [[[[...]]]]: the C scanner gives up past Python's recursion limit
        raise RequestError(422, "body: Invalid JSON: nested too deeply") from None


def parse_predict(body: bytes, cfg: ServeSettings) -> list[str]:
    """The texts of `{"texts": [...]}`, or a 413/422 `RequestError` naming the first problem
    (as `field: message`; the input itself is never echoed back)."""
    if len(body) > cfg.max_body_bytes:
        raise RequestError(413, f"request body over {cfg.max_body_bytes} bytes")
    doc = _decode(body)
    if not isinstance(doc, dict):
        raise RequestError(422, "body: Input should be an object")
    if "texts" not in doc:  # before the extras: a typo'd key is reported as the missing one
        raise RequestError(422, "texts: Field required")
    for key in doc:
        if key != "texts":
            raise RequestError(422, f"{key[:64]}: Extra inputs are not permitted")
    texts = doc["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, "texts: Input should be a valid array")
    if not texts:
        raise RequestError(422, "texts: List should have at least 1 item")
    if len(texts) > cfg.max_texts:
        raise RequestError(
            413, f"texts: {len(texts)} texts in one request; the limit is {cfg.max_texts}"
        )
    for i, t in enumerate(texts):
        if type(t) is not str:
            raise RequestError(422, f"texts.{i}: Input should be a valid string")
        if len(t) > cfg.max_chars:
            raise RequestError(
                413, f"texts.{i}: {len(t)} characters; the limit is {cfg.max_chars} per text"
            )
        if not t.isascii():
            try:  # "\ud800" parses as JSON but no tokenizer can take it
                t.encode("utf-8")
            except UnicodeEncodeError:
                raise RequestError(422, f"texts.{i}: not valid Unicode (lone surrogate)") from None
    return texts


def render_predictions(
    probs: np.ndarray, labels: list[str], thresholds: list[float] | None = None
) -> bytes:
    """`{"predictions": [{"label", "score", "probs"}, ...]}` in input order, as UTF-8 JSON.
    A multi-label model (`thresholds` given) answers `{"labels": [...], "probs"}` per text:
    every label whose probability reaches its threshold."""
    rows = probs.tolist()  # one C call instead of a float() per cell
    if thresholds is not None:
        sets = [
            {
                "labels": [n for n, p, t in zip(labels, row, thresholds) if p >= t],
                "probs": dict(zip(labels, row)),
            }
            for row in rows
        ]
        return json.dumps({"predictions": sets}, separators=(",", ":")).encode()
    best = probs.argmax(1).tolist()
    preds = [
        {"label": labels[b], "score": row[b], "probs": dict(zip(labels, row))}
        for row, b in zip(rows, best)
    ]
    return json.dumps({"predictions": preds}, separators=(",", ":")).encode()


def error_body(message: str) -> bytes:
    return json.dumps({"detail": message}).encode()
