"""Serving speed: the light runtime against PyTorch, then an HTTP load test on loopback.

Part 1 (in-process, one thread, tokenisation included): batch-1 latency p50/p95 and batch-256
throughput of the run's student in PyTorch fp32, and of its ONNX export in fp32 and int8
through `tinystudent.inference.Predictor`; for the int8 graph, the batch-1 time is also split
into preprocessing and the onnxruntime call. The goal: int8 pQRNN at batch 1 under 1 ms.

Part 2: `tinystudent serve` started in a subprocess on 127.0.0.1 (a free port), N concurrent
clients sending one text per request for a bounded time and request count; throughput,
latency p50/p99 and errors. The server is stopped at the end whatever happens.

Writes bench/results/serve.json (with the machine, versions and command).

    python bench/serve.py [--run runs/demo] [--clients 16] [--seconds 20] [--max-requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment  # noqa: E402

from tinystudent.evaluate.speed import latency_ms, throughput_tps, torch_threads  # noqa: E402
from tinystudent.export import export_onnx  # noqa: E402
from tinystudent.inference import Predictor  # noqa: E402
from tinystudent.io import read_json, write_json  # noqa: E402
from tinystudent.students import load_student  # noqa: E402

HOST = "127.0.0.1"  # loopback only, always


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def runtime_speed(
    student_dir: Path, export_dir: Path, texts: list[str], latency_n: int, seconds: float
) -> dict[str, Any]:
    """One thread everywhere: torch intra-op threads and onnxruntime's intra_op_num_threads."""
    out: dict[str, Any] = {}
    student = load_student(student_dir)
    with torch_threads(1):
        row = latency_ms(student.predict_proba, texts, n=latency_n)
        row["throughput_tps"] = throughput_tps(student.predict_proba, texts, min_seconds=seconds)
    out["pytorch fp32"] = row
    for variant in ("fp32", "int8"):
        p = Predictor.load(export_dir, variant, threads=1)  # type: ignore[arg-type]
        row = latency_ms(p.predict_proba, texts, n=latency_n)
        row["throughput_tps"] = throughput_tps(p.predict_proba, texts, min_seconds=seconds)
        out[f"onnx {variant}"] = row
    # Where a batch-1 call goes: preprocessing (tokenise + hash) vs the graph itself.
    p = Predictor.load(export_dir, "int8", threads=1)
    pre, run = [], []
    for i in range(latency_n):
        t0 = time.perf_counter()
        feeds = p.preprocessor([texts[i % len(texts)]])
        t1 = time.perf_counter()
        p.session.run(["probs"], feeds)
        pre.append((t1 - t0) * 1000)
        run.append((time.perf_counter() - t1) * 1000)
    out["onnx int8 batch-1 split"] = {
        "preprocess_p50_ms": statistics.median(pre),
        "session_p50_ms": statistics.median(run),
    }
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def _load(
    base: str, texts: list[str], clients: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker(c: httpx.AsyncClient, k: int) -> None:
        nonlocal sent
        while time.perf_counter() < deadline and sent < max_requests:
            text = texts[(sent * 7919 + k) % len(texts)]
            sent += 1
            t0 = time.perf_counter()
            try:
                r = await c.post(f"{base}/predict", json={"texts": [text]})
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    start = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=30) as c:
        await asyncio.gather(*(worker(c, k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": sent,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "throughput_rps": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 0.50) if latencies else None,
        "p99_ms": _pct(latencies, 0.99) if latencies else None,
    }


def http_load(
    export_dir: Path,
    texts: list[str],
    clients: int,
    seconds: float,
    max_requests: int,
    threads: int,
) -> dict[str, Any]:
    import httpx

    port = _free_port()
    base = f"http://{HOST}:{port}"
    cmd = [sys.executable, "-m", "tinystudent", "serve", str(export_dir)]
    cmd += ["--host", HOST, "--port", str(port), "--threads", str(threads)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"server did not start:\n{log.read().decode()[-2000:]}")
                time.sleep(0.1)
            result = asyncio.run(_load(base, texts, clients, seconds, max_requests))
            result["server_model_calls"] = httpx.get(f"{base}/health").json()["batches"]
            result["server_threads"] = threads
            return result
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo", help="a run directory with student/ and data/")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0, help="load-test duration")
    ap.add_argument("--max-requests", type=int, default=20_000)
    ap.add_argument("--server-threads", type=int, default=1)
    ap.add_argument("--latency-n", type=int, default=1000)
    ap.add_argument("--min-seconds", type=float, default=3.0, help="per throughput probe")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "serve.json"))
    args = ap.parse_args(argv)

    run = Path(args.run)
    texts: list[str] = read_json(run / "data" / "split.json")["test_texts"]
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = Path(tmp) / "export"
        student = load_student(run / "student")
        facts = export_onnx(student, export_dir, int8=True, check_texts=texts[:500])
        result: dict[str, Any] = {
            "environment": environment(),
            "run": str(run),
            "student": {"kind": student.kind, "params": student.num_params()},
            "export": facts,
            "load_average_before": os.getloadavg(),
        }
        print("runtime (1 thread) ...", flush=True)
        result["runtime"] = runtime_speed(
            run / "student", export_dir, texts, args.latency_n, args.min_seconds
        )
        for name, row in result["runtime"].items():
            print(f"  {name}: {row}")
        if not args.skip_http:
            print(f"HTTP load: {args.clients} clients, {args.seconds:g} s ...", flush=True)
            result["http"] = http_load(
                export_dir,
                texts,
                args.clients,
                args.seconds,
                args.max_requests,
                args.server_threads,
            )
            print(f"  {result['http']}")
        result["load_average_after"] = os.getloadavg()
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
