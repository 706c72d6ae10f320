"""Limits and batching knobs of the HTTP server, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ServeSettings:
    """`max_texts`, `max_chars` and `timeout_s` are per request; the rest bound the whole
    process, so that memory and latency stay bounded however many clients come:

    - `max_batch`: texts per model call; `max_wait_ms`: how long a batch may wait for more
      requests once the model is free (0: none; batches still form while the model runs).
    - `max_queue`: texts waiting for the model (past it: 503).
    - `max_connections`: open connections (past it: 503 and close).
    - `max_pending_bytes`: request bodies held at once, declared sizes summed (past it: 503).
    - `read_timeout_s`: a request's head and body must arrive within it from its first byte
      (slow clients: 408); `keepalive_s`: an idle connection is closed after it.
    - `max_header_bytes`: request line and headers (past it: 431).
    """

    max_texts: int = 256
    max_chars: int = 10_000
    timeout_s: float = 10.0
    max_batch: int = 64
    max_wait_ms: float = 0.0
    max_queue: int = 4096
    max_connections: int = 1024
    max_pending_bytes: int = 64 * 1024 * 1024
    read_timeout_s: float = 10.0
    keepalive_s: float = 5.0
    max_header_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.removesuffix("_s").replace("_", "-")
            if f.name == "max_wait_ms":
                if value < 0:
                    raise ValueError(f"{flag}: must be >= 0")
            elif f.name.endswith("_s"):
                if value <= 0:
                    raise ValueError(f"{flag}: must be > 0 seconds")
            elif value < 1:
                raise ValueError(f"{flag}: must be >= 1")
        if self.max_pending_bytes < self.max_body_bytes:
            raise ValueError(
                f"--max-pending-bytes: {self.max_pending_bytes} is below one full request "
                f"({self.max_body_bytes} bytes for --max-texts and --max-chars)"
            )

    @property
    def max_body_bytes(self) -> int:
        """Bytes a request may carry: every text at its limit, 4 bytes a character (UTF-8
        worst case, JSON escapes aside), plus room for the JSON around them."""
        return self.max_texts * (4 * self.max_chars + 16) + 1024
