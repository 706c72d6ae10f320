"""Regenerate the README's result sections from result files; figures are never typed by hand.

    python bench/render_readme.py [--demo runs/demo]

Fills the blocks between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers:
`demo-report` from a demo run's report.md, `students`, `serve` and `embeddings` from
bench/results/students.json, serve.json and embeddings.json.
A block whose source is missing is left as it is.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {name} markers")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def demo_block(run_dir: Path) -> str:
    report = json.loads((run_dir / "report.json").read_text())
    md = (run_dir / "report.md").read_text()
    return (
        f"Measured by `make demo` (`tinystudent demo --out {run_dir}`) on a 2-core CPU machine; "
        f"the distillation run took {report['seconds'] / 60:.1f} minutes "
        f"(installation not included).\n\n{md}"
    )


def students_block(path: Path) -> str:
    doc = json.loads(path.read_text())
    t = doc["teacher"]
    env = doc["environment"]
    lines = [
        f"Rotten Tomatoes, k = 64, {doc['test_size']} test texts, every student trained on the "
        f"same {doc['transfer_size']} teacher-labelled texts. Speed is single-thread CPU, "
        "tokenisation included: throughput at batch 256, latency at batch 1. Generated from "
        f"`bench/results/students.json` (`{env['command']}`, commit "
        f"{(env['git_commit'] or 'unknown')[:8]}).",
        "",
        "| model | accuracy | % of teacher | params | int8 size | texts/s fp32 | texts/s int8 "
        "| x teacher (int8) | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| teacher {t['name']} | {t['accuracy']:.3f} | 100% | {t['params'] / 1e6:.1f}M | "
        f"{t['size_bytes'] / 1e6:.0f} MB (fp32) | {t['throughput_tps']:,.0f} | - | 1 | "
        f"{t['p50_ms']:.1f} | {t['p95_ms']:.1f} |",
    ]
    for kind, r in doc["students"].items():
        q = r["int8_speed"]
        lines.append(
            f"| {kind} | {r['accuracy']:.3f} | {r['pct_of_teacher']:.1f}% | "
            f"{r['params'] / 1e3:,.0f}K | {r['int8_bytes'] / 1e6:.2f} MB | "
            f"{r['throughput_tps']:,.0f} | {q['throughput_tps']:,.0f} | "
            f"{r['int8_speedup_vs_teacher']:,.0f} | {q['p50_ms']:.2f} | {q['p95_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def serve_block(path: Path) -> str:
    doc = json.loads(path.read_text())
    ex, h = doc["export"], doc["http"]
    lines = [
        f"The demo's {doc['student']['kind']} student through the light runtime, 1 thread, "
        "tokenisation included. Generated from `bench/results/serve.json` "
        f"(`{doc['environment']['command']}`); int8 agrees with fp32 on "
        f"{100 * ex['int8_agreement_with_fp32']:.1f}% of the test split, fp32 ONNX differs from "
        f"PyTorch by at most {ex['fp32_max_abs_diff']:.1e}.",
        "",
        "| path | batch-1 p50 ms | batch-1 p95 ms | texts/s at batch 256 |",
        "|---|---|---|---|",
    ]
    for name in ("pytorch fp32", "onnx fp32", "onnx int8"):
        r = doc["runtime"][name]
        lines.append(
            f"| {name} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['throughput_tps']:,.0f} |"
        )
    lines += [
        "",
        f"HTTP load test (`tinystudent serve` on 127.0.0.1, {h['clients']} concurrent clients for "
        f"{h['seconds']:.0f} s, server on {h['server_threads']} thread): {h['requests']:,} "
        f"requests, **{h['errors']} errors**, {h['throughput_rps']:.0f} requests/s, "
        f"p50 {h['p50_ms']:.0f} ms, p99 {h['p99_ms']:.0f} ms.",
    ]
    return "\n".join(lines) + "\n"


def embeddings_block(path: Path) -> str:
    doc = json.loads(path.read_text())
    models = doc["models"]
    env = doc["environment"]
    teacher_tps = models["teacher"]["throughput_1thread_tps"]
    lines = [
        f"Teacher {doc['teacher']['model']}; students trained on {doc['data']['train_texts']:,} "
        "unlabeled texts (Rotten Tomatoes and BBC News train splits), scored on the held-out test "
        "splits: Spearman of pairwise cosine similarities against the teacher's, recall@10 of the "
        "teacher's nearest neighbours, and logistic-regression accuracy on the embeddings (mean "
        "of the two datasets). Throughput: 1 thread, tokenisation included. Generated from "
        f"`bench/results/embeddings.json` (`{env['command']}`, commit "
        f"{(env['git_commit'] or 'unknown')[:8]}).",
        "",
        "| encoder | params | Spearman | recall@10 | LR accuracy | texts/s | x teacher |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        mean, tps = m["metrics"]["mean"], m["throughput_1thread_tps"]
        label = {"teacher": f"teacher {doc['teacher']['model']}", "model2vec": "model2vec"}.get(
            name, f"{name} (ours)"
        )
        lines.append(
            f"| {label} | {m['params'] / 1e6:.2f}M | {mean['spearman']:.3f} | "
            f"{mean['recall_at_10']:.3f} | {mean['lr_accuracy']:.3f} | "
            f"{tps:,.0f} | {tps / teacher_tps:,.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", default="runs/demo", help="a finished demo run directory")
    args = ap.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    demo = Path(args.demo)
    if (demo / "report.json").exists():
        text = replace_block(text, "demo-report", demo_block(demo))
    students = ROOT / "bench" / "results" / "students.json"
    if students.exists():
        text = replace_block(text, "students", students_block(students))
    serve = ROOT / "bench" / "results" / "serve.json"
    if serve.exists():
        text = replace_block(text, "serve", serve_block(serve))
    embeddings = ROOT / "bench" / "results" / "embeddings.json"
    if embeddings.exists():
        text = replace_block(text, "embeddings", embeddings_block(embeddings))
    readme.write_text(text)
    print("README.md updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
