"""CPU speed as a user sees it: raw texts in, probabilities out, tokenisation included.

Latency is per single text (batch 1, p50/p95); throughput uses batches of 256. Both can be
pinned to a thread count, so one process can compare systems under the same conditions.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (None leaves them alone)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def latency_ms(
    predict: Callable[[list[str]], Any], texts: list[str], n: int = 200, warmup: int = 10
) -> dict[str, float]:
    """p50 / p95 milliseconds of predicting one text at a time."""
    for t in texts[:warmup]:
        predict([t])
    samples = []
    for i in range(n):
        text = texts[i % len(texts)]
        start = time.perf_counter()
        predict([text])
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, int(0.95 * len(samples)))],
    }


def throughput_tps(
    predict: Callable[[list[str]], Any],
    texts: list[str],
    batch_size: int = 256,
    min_seconds: float = 2.0,
) -> float:
    """Texts per second, calling `predict` on consecutive batches until `min_seconds` pass."""
    predict(texts[:batch_size])
    done = 0
    start = time.perf_counter()
    i = 0
    while True:
        batch = texts[i : i + batch_size] or texts[:batch_size]
        i = (i + batch_size) % max(1, len(texts))
        predict(batch)
        done += len(batch)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def speed_profile(
    predict: Callable[[list[str]], Any],
    texts: list[str],
    threads: list[int | None],
    latency_n: int = 200,
    min_seconds: float = 2.0,
) -> dict[str, dict[str, float]]:
    """Latency and throughput for each thread setting, keyed 'threads=N' ('all' for None)."""
    out = {}
    for n in threads:
        with torch_threads(n):
            row = latency_ms(predict, texts, n=latency_n)
            row["throughput_tps"] = throughput_tps(predict, texts, min_seconds=min_seconds)
            row["threads"] = float(n or torch.get_num_threads())
        out[f"threads={n or 'all'}"] = row
    return out
