"""Limits and batching knobs of the HTTP server, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    """Every limit is per request except `max_batch` (texts per model call) and `max_queue`
    (requests waiting for the model): together they bound memory and latency under load."""

    max_texts: int = 256
    max_chars: int = 10_000
    timeout_s: float = 10.0
    max_batch: int = 64
    max_wait_ms: float = 2.0
    max_queue: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_chars", "max_batch", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 1")
        if self.timeout_s <= 0:
            raise ValueError("--timeout: must be > 0 seconds")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms: must be >= 0")

    @property
    def max_body_bytes(self) -> int:
        """Bytes a request may carry: every text at its limit, 4 bytes a character (UTF-8
        worst case, JSON escapes aside), plus room for the JSON around them."""
        return self.max_texts * (4 * self.max_chars + 16) + 1024
