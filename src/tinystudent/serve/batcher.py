"""Micro-batching: requests that arrive within a few milliseconds share one model call.

A tiny model spends most of a batch-1 call on fixed overhead (session run, Python), so
concurrent single-text requests are far cheaper run together. A worker task takes the first
waiting request, then gathers more for at most `max_wait_ms` or until `max_batch` texts, and
runs the model in one worker thread so the event loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """More requests are waiting than `max_queue`: the caller should answer 503."""


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future[np.ndarray] = field(repr=False)


class MicroBatcher:
    """`await submit(texts)` returns their probabilities; calls are grouped behind the scenes."""

    def __init__(
        self,
        predict: Callable[[list[str]], np.ndarray],
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.batches = 0  # model calls so far (tests and /health read it)
        self._queue: asyncio.Queue[_Item] | None = None
        self._held: _Item | None = None  # taken from the queue but did not fit the last batch
        self._worker: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tinystudent-predict")
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._pool:
            self._pool.shutdown(wait=True)
        self._worker = self._pool = self._queue = None

    async def submit(self, texts: list[str]) -> np.ndarray:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(list(texts), future))
        except asyncio.QueueFull as e:
            raise QueueFullError(f"{self.max_queue} requests already waiting") from e
        return await future

    async def _gather(self, queue: asyncio.Queue[_Item]) -> list[_Item]:
        """The next batch: one request, plus whatever else arrives in time and fits."""
        first = self._held or await queue.get()
        self._held = None
        batch, n = [first], len(first.texts)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while n < self.max_batch:
            left = deadline - asyncio.get_running_loop().time()
            try:  # past the deadline, still take what is already waiting
                if left <= 0:
                    item = queue.get_nowait()
                else:
                    item = await asyncio.wait_for(queue.get(), left)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if n + len(item.texts) > self.max_batch:
                self._held = item
                break
            batch.append(item)
            n += len(item.texts)
        return [b for b in batch if not b.future.done()]  # timed-out requests are dropped

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather(self._queue)
            if not batch:
                continue
            texts = [t for item in batch for t in item.texts]
            try:
                probs = await loop.run_in_executor(self._pool, self.predict, texts)
            except Exception as e:  # the requests fail, the server goes on
                log.exception("prediction failed for a batch of %d texts", len(texts))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(e)
                continue
            self.batches += 1
            start = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(probs[start : start + len(item.texts)])
                start += len(item.texts)
