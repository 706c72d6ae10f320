"""Teacher labeling on a pool of Ray actors, written into the same soft-label cache.

Plain Ray actors rather than Ray Data: each actor loads the teacher once and then serves
batches, which is all labeling (and generation) needs; Ray Data's streaming executor adds
pandas/arrow conversions and its own scheduling threads, which on a 2-core laptop cost more
than they save. The driver sends only the texts the cache lacks and writes results into the
content-keyed cache shard by shard as they arrive, so single-process and Ray runs share one
cache and an interrupted Ray job resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from tinystudent.devices import check_device_name
from tinystudent.errors import AssetMissingError, TinyStudentError
from tinystudent.label.cache import LabelStats, SoftLabelCache
from tinystudent.teachers.portable import PortableTeacher, SavedTeacher

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

RAY_HINT = "pip install 'tinystudent[ray]'"


def require_ray() -> ModuleType:
    """Import ray on first use: it is an optional extra and slow to import."""
    try:
        import ray
    except ImportError:
        raise AssetMissingError(f"labeling on Ray needs Ray: {RAY_HINT}") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Reuse a running Ray session, or join `address` / `$RAY_ADDRESS`, or start a local one.

    A session this function opened is shut down on exit; one it found running is left alone,
    so callers (tests, benchmarks) can pay Ray's startup once for many calls.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, logging_level=logging.WARNING)
    else:  # a private local instance: no dashboard, only the cores we are told to use
        ray.init(
            address="local",  # never silently join a `ray start` cluster found on this host
            num_cpus=num_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


class _BatchWorker:
    """Actor body: build the expensive callable once, then serve batches to it."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]], threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # as many threads as the CPUs Ray reserved, no more
        self.fn = factory()

    def run(self, batch: Any) -> Any:
        return self.fn(batch)


def _fits(ray: ModuleType, num_cpus: float, num_gpus: float, wanted: int) -> int:
    """How many actors the cluster can hold now: an actor that cannot be placed would sit on
    its queued batches forever, so we start fewer (with a warning) rather than hang."""
    have = ray.cluster_resources()
    fits = [
        int(have.get(k, 0) // need) for k, need in (("CPU", num_cpus), ("GPU", num_gpus)) if need
    ]
    n = min(fits, default=wanted)
    if n < 1:
        raise TinyStudentError(
            f"the Ray cluster has {have.get('CPU', 0)} CPUs and {have.get('GPU', 0)} GPUs; "
            f"one worker needs {num_cpus} CPUs and {num_gpus} GPUs"
        )
    if n < wanted:
        log.warning("the Ray cluster holds %d workers of the %d asked for; using %d", n, wanted, n)
    return n


def map_batches_actors(
    actor_factory: Callable[[], Callable[[list[T]], R]],
    items: Sequence[T],
    num_workers: int,
    batch_size: int,
    *,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    max_in_flight: int = 2,
    address: str | None = None,
) -> Generator[tuple[int, list[T], R], None, None]:
    """Map `fn(batch)` over `items` on `num_workers` actors; yields `(offset, batch, result)`.

    `actor_factory` is a picklable zero-argument callable run once inside each actor (e.g.
    `functools.partial(load_my_model, path)`) that returns the batch function; so a model is
    loaded once per actor, never shipped from the driver. Results come in completion order
    (use `offset` to place them). Each actor keeps `max_in_flight` batches queued, so it never
    idles while the driver handles a result. Actors are killed when the iterator is exhausted
    or closed (wrap it in `contextlib.closing` if you may stop early). Runs in the current Ray
    session, or opens one as `ray_session(address)` does.
    """
    if num_workers < 1 or batch_size < 1 or max_in_flight < 1:
        raise ValueError("num_workers, batch_size and max_in_flight must be >= 1")
    batches = [(i, list(items[i : i + batch_size])) for i in range(0, len(items), batch_size)]
    if not batches:
        return
    with ray_session(address) as ray:
        num_workers = min(num_workers, len(batches), _fits(ray, num_cpus, num_gpus, num_workers))
        worker_cls = ray.remote(
            num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=2, max_task_retries=2
        )(_BatchWorker)
        threads = max(1, int(num_cpus))
        actors = [worker_cls.remote(actor_factory, threads) for _ in range(num_workers)]
        queue = iter(batches)
        pending: dict[Any, tuple[Any, int, list[T]]] = {}

        def submit(actor: Any) -> None:
            nxt = next(queue, None)
            if nxt is not None:
                pending[actor.run.remote(nxt[1])] = (actor, *nxt)

        try:
            for actor in actors:
                for _ in range(max_in_flight):
                    submit(actor)
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                actor, offset, batch = pending.pop(ref)
                result = ray.get(ref)
                submit(actor)  # refill before yielding: the actor works while we write
                yield offset, batch, result
        finally:
            for actor in actors:
                ray.kill(actor)


class _TeacherLabeler:
    """Rebuilds the teacher inside an actor, on `device` as resolved on the actor's own
    machine (`auto`: its GPU when Ray gave it one); answers with its fingerprint so the
    driver can refuse results from a different model (a stale copy of a directory on
    another node)."""

    def __init__(self, source: PortableTeacher, cache_root: str, device: str = "cpu") -> None:
        self.teacher = source.open(cache_root, device)
        self.fingerprint = self.teacher.fingerprint

    def __call__(self, texts: list[str]) -> tuple[str, np.ndarray]:
        return self.fingerprint, self.teacher.predict_proba(texts)


def label_texts_ray(
    teacher_dir: str | Path | PortableTeacher,
    texts: list[str],
    cache_root: str | Path,
    num_workers: int = 2,
    batch_size: int = 64,
    address: str | None = None,
    *,
    shard_size: int = 1024,
    cpus_per_worker: float = 1.0,
    device: str = "cpu",
    gpus_per_worker: float | None = None,
) -> tuple[np.ndarray, LabelStats]:
    """`label_texts` on a Ray actor pool: same cache, same probabilities, same stats.

    Each of `num_workers` actors loads the saved teacher, of any kind, from `teacher_dir`, or
    rebuilds the teacher a `PortableTeacher` describes (`SavedAmalgam`: several saved members
    amalgamated as the driver did); on a cluster those paths, and `cache_root` for a kind that
    caches per-text work, must exist on every node (a shared filesystem or the same copy
    everywhere). Results are cached under the driver's fingerprint, as `label_texts` does.
    Only texts missing from the cache are sent, shortest first in batches of `batch_size`;
    results are saved by the driver in shards of about `shard_size` texts as they arrive, so
    a crash loses at most one shard and a rerun sends only what is missing. Each worker puts
    the teacher on `device`, resolved on its own node; it asks Ray for `gpus_per_worker` GPUs
    (default: 1 when `device` names cuda, else none: Ray hides the GPUs of a worker that
    asked for none, so `auto` is the CPU there).
    """
    check_device_name(device)
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if device.startswith("cuda") else 0.0
    start = time.perf_counter()
    source = (
        teacher_dir if not isinstance(teacher_dir, (str, Path)) else SavedTeacher.at(teacher_dir)
    )
    cache = SoftLabelCache(cache_root, source.fingerprint, source.n_classes)
    stats = LabelStats(total=len(texts), corrupt_shards=cache.corrupt_shards)
    # Sorted by (length, text) as `label_texts` sorts: batches never depend on string hashing
    # and are the single process's on a cold cache when the batch and shard sizes match.
    missing = sorted(
        dict.fromkeys(t for t in texts if cache.get(t) is None), key=lambda t: (len(t), t)
    )
    stats.hits = sum(1 for t in texts if cache.get(t) is not None)
    if missing:
        log.info("labeling %d texts on %d Ray workers", len(missing), num_workers)
        results = map_batches_actors(
            partial(_TeacherLabeler, source, str(Path(cache_root).expanduser().resolve()), device),
            missing,
            num_workers,
            batch_size,
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
            address=address,
        )
        buf_texts: list[str] = []
        buf_probs: list[np.ndarray] = []
        with closing(results), tqdm(total=len(missing), desc="labeling (ray)", unit="text") as bar:
            for _, batch, (worker_fp, probs) in results:
                if worker_fp != source.fingerprint:
                    raise TinyStudentError(source.mismatch(worker_fp))
                buf_texts.extend(batch)
                buf_probs.append(probs)
                bar.update(len(batch))
                if len(buf_texts) >= shard_size:
                    cache.put(buf_texts, np.concatenate(buf_probs))
                    buf_texts, buf_probs = [], []
        if buf_texts:
            cache.put(buf_texts, np.concatenate(buf_probs))
    stats.computed = len(missing)
    rows = [cache.get(t) for t in texts]
    if any(r is None for r in rows):
        raise RuntimeError("soft-label cache lost rows while filling")
    width = cache.n_classes
    out = np.stack(rows) if rows else np.zeros((0, width), np.float32)  # type: ignore[arg-type]
    stats.seconds = time.perf_counter() - start
    return out.astype(np.float32), stats
