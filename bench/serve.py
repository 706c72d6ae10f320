"""Serving speed: the light runtime against PyTorch, then HTTP load tests on loopback.

Part 1 (in-process, one thread, tokenisation included): batch-1 latency p50/p95 and batch-256
throughput of the run's student in PyTorch fp32, and of its ONNX export in fp32 and int8
through `tinystudent.inference.Predictor`; for the int8 graph, the batch-1 time is also split
into preprocessing and the onnxruntime call.

Part 2: `tinystudent serve` started in a subprocess on 127.0.0.1 (a free port), once per
server configuration, side by side in one run: `--baseline REV` (this repository's src/ at
that revision, e.g. the code before a change) and this tree at 1 and `--workers` processes.
Each gets the same bounded mixed load (`tinystudent.serve.loadtest`): N clients sending one
valid text per request, bad clients sending malformed and oversized requests, slow
(slowloris) clients and a connection flood. Recorded: requests/s, p50/p99, errors by kind,
every bad request's answer, the server's CPU time per request (and the model's share of it),
its peak RSS (VmHWM, all processes), and whether it was still healthy at the end. Servers are
stopped whatever happens.

Writes bench/results/serve.json (with the machine, versions and command).

    python bench/serve.py [--run runs/demo] [--clients 16] [--seconds 20] [--workers 2]
                          [--baseline GIT_REV]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment  # noqa: E402

from tinystudent.evaluate.speed import latency_ms, throughput_tps, torch_threads  # noqa: E402
from tinystudent.export import export_onnx  # noqa: E402
from tinystudent.inference import Predictor  # noqa: E402
from tinystudent.io import read_json, write_json  # noqa: E402
from tinystudent.serve.loadtest import LoadSpec, idle_latency, run_load  # noqa: E402
from tinystudent.students import load_student  # noqa: E402

HOST = "127.0.0.1"  # loopback only, always
SRC = str(Path(__file__).resolve().parents[1] / "src")
CLEAN_S = 5.0  # a valid-only phase first: the server's CPU per request, model share apart
READ_TIMEOUT_S = 2.0  # the servers' --read-timeout here, so that slow clients end in time


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


def _tree(pid: int) -> list[int]:
    """The server and its worker processes (Linux /proc)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(k) for k in kids)]


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pids: list[int]) -> float:
    """VmHWM: each process's peak resident set since it started, summed."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024


def _wait_up(base: str, server: subprocess.Popen[bytes], log: Any) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f"server did not start:\n{log.read().decode()[-2000:]}")
        time.sleep(0.1)


def _measure(base: str, port: int, texts: list[str], spec: LoadSpec, pid: int) -> dict[str, Any]:
    import httpx

    time.sleep(1.0)  # workers: let every process finish loading
    pids = _tree(pid)
    idle = asyncio.run(idle_latency(HOST, port, texts, 300))
    clean = replace(spec, seconds=CLEAN_S, bad_clients=0, slow_clients=0, flood=0)
    cpu0, health0 = _cpu_s(pids), httpx.get(f"{base}/health").json()
    valid_only = asyncio.run(run_load(HOST, port, texts, clean))
    cpu, health = _cpu_s(pids) - cpu0, httpx.get(f"{base}/health").json()
    result = asyncio.run(run_load(HOST, port, texts, spec))
    health_after = httpx.get(f"{base}/health", timeout=5).json()
    result["idle_1_client"] = idle
    result["valid_only"] = {k: v for k, v in valid_only.items() if not k.startswith("bad")}
    result["valid_only"]["server_cpu_ms_per_request"] = 1000 * cpu / max(1, valid_only["ok"])
    result["server_healthy_after"] = health_after["status"] == "ok"
    result["server_processes"] = len(pids)
    result["server_processes_after"] = len(_tree(pid))
    result["peak_rss_mb"] = _peak_rss_mb(_tree(pid))
    if "model_cpu_s" in health and len(pids) == 1:  # the built-in server reports it
        calls = max(1, health["batches"] - health0["batches"])
        model = 1000 * (health["model_cpu_s"] - health0["model_cpu_s"]) / max(1, valid_only["ok"])
        result["valid_only"]["model_cpu_ms_per_request"] = model
        result["valid_only"]["texts_per_model_call"] = (health["texts"] - health0["texts"]) / calls
    return result


def http_load(
    export_dir: Path, texts: list[str], spec: LoadSpec, server: dict[str, Any], threads: int
) -> dict[str, Any]:
    """One server (`server["src"]`: the source tree to run it from) under the mixed load."""
    port = _free_port()
    cmd = [sys.executable, "-m", "tinystudent", "serve", str(export_dir)]
    cmd += ["--host", HOST, "--port", str(port), "--threads", str(threads), *server["flags"]]
    env = dict(os.environ, PYTHONPATH=server["src"], OMP_NUM_THREADS="1")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            _wait_up(f"http://{HOST}:{port}", proc, log)
            result = _measure(f"http://{HOST}:{port}", port, texts, spec, proc.pid)
            result["server_exited"] = proc.poll() is not None
            return {"server": server["name"], "flags": server["flags"], **result}
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def servers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The configurations compared, in one run: the baseline first when given."""
    new = ["--read-timeout", f"{READ_TIMEOUT_S:g}", "--max-connections", str(args.max_connections)]
    out = []
    if args.baseline:
        name = f"before ({args.baseline})"
        out.append({"name": name, "src": args.baseline_src, "flags": []})
    here = f"after ({_commit(SRC) or 'this tree'})"
    out.append({"name": here, "src": SRC, "flags": new})
    if args.workers > 1:
        flags = [*new, "--workers", str(args.workers)]
        out.append({"name": f"{here}, {args.workers} workers", "src": SRC, "flags": flags})
    return out


def _commit(src: str) -> str | None:
    """The short commit of the checkout holding `src`, '+' when it has local changes."""
    try:
        run = subprocess.run(
            ["git", "describe", "--always", "--dirty=+"], cwd=src, capture_output=True, text=True
        )
    except OSError:
        return None
    return run.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo", help="a run directory with student/ and data/")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0, help="load-test duration")
    ap.add_argument("--max-requests", type=int, default=100_000)
    ap.add_argument("--bad-clients", type=int, default=2)
    ap.add_argument("--slow-clients", type=int, default=2)
    ap.add_argument("--flood", type=int, default=64, help="connections opened at once, mid-test")
    ap.add_argument("--max-connections", type=int, default=64, help="the server's limit")
    ap.add_argument("--workers", type=int, default=2, help="also run this many processes")
    ap.add_argument("--baseline", help="a git revision of this repository to compare with")
    ap.add_argument("--server-threads", type=int, default=1)
    ap.add_argument("--latency-n", type=int, default=1000)
    ap.add_argument("--min-seconds", type=float, default=3.0, help="per throughput probe")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "serve.json"))
    args = ap.parse_args(argv)

    run = Path(args.run)
    with tempfile.TemporaryDirectory() as old:
        if args.baseline:
            args.baseline_src = _checkout(args.baseline, Path(old))
        return _main(args, run)


def _checkout(rev: str, into: Path) -> str:
    """`rev`'s src/ tree, extracted (git archive): the baseline server runs from it."""
    root = Path(SRC).parent
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=root, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return str(into / "src")


def _main(args: argparse.Namespace, run: Path) -> int:
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
            spec = LoadSpec(
                clients=args.clients,
                seconds=args.seconds,
                max_requests=args.max_requests,
                bad_clients=args.bad_clients,
                slow_clients=args.slow_clients,
                flood=args.flood,
                read_timeout_s=READ_TIMEOUT_S,
            )
            result["http_spec"] = {**vars(spec), "server_threads": args.server_threads}
            result["http"] = []
            for server in servers(args):
                print(f"HTTP load, {server['name']}: {args.clients} clients, "
                      f"{args.seconds:g} s ...", flush=True)  # fmt: skip
                row = http_load(export_dir, texts, spec, server, args.server_threads)
                print(f"  { ({k: v for k, v in row.items() if k != 'bad_by_kind'}) }", flush=True)
                result["http"].append(row)
        result["load_average_after"] = os.getloadavg()
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
