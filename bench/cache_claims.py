"""What coordinating a shared cache costs, and what sharing it gains. Writes
bench/results/cache_claims.json.

1. Overhead: `cached_rows` (lock, claim file, heartbeat thread per shard) against the same
   fill without coordination (compute, then `put`, shard after shard, as before claims),
   with a free fake teacher, so only the cache's own cost is timed. Alternated, same process.
2. Sharing: P processes labeling the same texts into one directory, with a fake teacher that
   costs `--delay` seconds a shard (a sleep: the CPUs are not the limit), against one process;
   every text must be computed exactly once in total. Timed from a common start signal
   (after every process has imported) to the last one's finish.

    python bench/cache_claims.py [--n 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from common import RESULTS, environment  # noqa: E402

from tinystudent.io import write_json  # noqa: E402
from tinystudent.label import SoftLabelCache, cached_rows  # noqa: E402


def probs(texts: list[str]) -> np.ndarray:
    raw = np.array([list(hashlib.sha256(t.encode()).digest()[:2]) for t in texts], np.float32)
    raw += 1
    return raw / raw.sum(1, keepdims=True)


def uncoordinated(cache: SoftLabelCache, texts: list[str], shard: int) -> np.ndarray:
    """`cached_rows` as it was before claims: fill shard after shard, then gather the rows."""
    missing = sorted({t for t in texts if cache.get(t) is None}, key=lambda t: (len(t), t))
    for i in range(0, len(missing), shard):
        cache.put(missing[i : i + shard], probs(missing[i : i + shard]))
    return np.stack([cache.get(t) for t in texts]).astype(np.float32)  # type: ignore[misc]


def overhead(n: int, shard: int, repeats: int) -> dict[str, Any]:
    texts = [f"text {i}" for i in range(n)]
    times: dict[str, list[float]] = {"uncoordinated": [], "claims": []}
    for _ in range(repeats):
        for how in times:
            with tempfile.TemporaryDirectory() as d:
                cache = SoftLabelCache(d, "bench", 2)
                start = time.perf_counter()
                if how == "claims":
                    cached_rows(cache, texts, probs, shard)
                else:
                    uncoordinated(cache, texts, shard)
                times[how].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    shards = -(-n // shard)
    return {
        "texts": n,
        "shard_size": shard,
        "seconds_best": best,
        "ratio": best["claims"] / best["uncoordinated"],
        "overhead_ms_per_shard": 1e3 * (best["claims"] - best["uncoordinated"]) / shards,
    }


WORKER = """
import os, sys, time
sys.path.insert(0, {bench!r})
from cache_claims import probs
from tinystudent.label import label_texts

class Slow:
    label_names = ["a", "b"]
    fingerprint = "bench-slow"
    def predict_proba(self, texts):
        time.sleep({delay})
        return probs(texts)

texts = [f"text {{i}}" for i in range({n})]
open(sys.argv[2] + ".ready", "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.005)
_, s = label_texts(Slow(), texts, sys.argv[1], {shard})
print(s.computed, s.by_others, time.time())
"""


def sharing(n: int, shard: int, delay: float, procs: int) -> dict[str, Any]:
    code = WORKER.format(bench=str(Path(__file__).parent), delay=delay, n=n, shard=shard)
    with tempfile.TemporaryDirectory() as d:
        cache, go = Path(d) / "cache", Path(d) / "go"
        ps = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(cache), f"{d}/w{i}", str(go)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(procs)
        ]
        while not all(Path(f"{d}/w{i}.ready").exists() for i in range(procs)):
            time.sleep(0.01)  # imports done everywhere: time the labeling only
        start = time.time()
        go.touch()
        outs = [p.communicate()[0].split() for p in ps]
    wall = max(float(o[2]) for o in outs) - start
    computed = [int(o[0]) for o in outs]
    return {
        "processes": procs,
        "seconds": wall,
        "computed_each": computed,
        "computed_total": sum(computed),
        "texts": n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--delay", type=float, default=0.2)
    args = ap.parse_args()
    result: dict[str, Any] = {"environment": environment()}
    result["overhead"] = [overhead(args.n, s, args.repeats) for s in (64, 1024)]
    n_share, shard = 960, 32  # 30 shards of `delay` seconds each
    result["sharing"] = {
        "delay_per_shard_s": args.delay,
        "runs": [sharing(n_share, shard, args.delay, p) for p in (1, 2, 3)],
    }
    write_json(RESULTS / "cache_claims.json", result)
    for o in result["overhead"]:
        print(
            f"shard {o['shard_size']}: claims/uncoordinated = {o['ratio']:.2f}, "
            f"+{o['overhead_ms_per_shard']:.2f} ms a shard"
        )
    for r in result["sharing"]["runs"]:
        print(f"{r['processes']} processes: {r['seconds']:.1f} s, computed {r['computed_each']}")


if __name__ == "__main__":
    main()
