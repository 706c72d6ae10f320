"""Regenerate the README's result sections from result files; figures are never typed by hand.

    python bench/render_readme.py [--demo runs/demo]

Fills the blocks between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers:
`demo-report` from a demo run's report.md; `students`, `serve`, `pqrnn`, `embeddings`, `generation`,
`teachers` and `rationale` from bench/results/<name>.json; `bench-rt` and `bench-bbc` from
the protocols' rt.json and bbc.json (written by bench/protocol.py, i.e. `make bench`);
`bench-peers_*` from the peer specs' JSON (`tinystudent bench bench/specs/peers_*.yaml`, plots
by `python bench/plots.py`). A block whose source is missing is left as it is.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


#: bench/specs/<name>.yaml runs whose tables the README shows (`tinystudent bench`).
PEER_SPECS = ("peers_rt_mpnet", "peers_bbc_mpnet_k8")


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
    ex = doc["export"]
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
    return "\n".join(lines) + "\n" + _http_lines(doc)


def _http_lines(doc: dict[str, Any]) -> str:
    """The load tests, one row per server, side by side from one run."""
    rows = doc.get("http") or []
    if not rows:
        return ""
    spec = doc["http_spec"]
    lines = [
        "",
        f"HTTP load test, each server in turn on 127.0.0.1 (1 onnxruntime thread, same run, same "
        f"client): {spec['clients']} clients sending one text per request for "
        f"{spec['seconds']:.0f} s while {spec['bad_clients']} clients send malformed and "
        f"oversized requests, {spec['slow_clients']} trickle requests a byte at a time "
        f"(slowloris) and {spec['flood']} connections open at once mid-test; before it, "
        "5 s of valid requests only (CPU per request) and 300 one at a time (idle).",
        "",
        "| server | req/s | p50 ms | p99 ms (× p50) | valid errors | bad answered as required | "
        "valid only: req/s, p99 ms | idle p50 ms | server CPU ms/req (model) | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for h in rows:
        v = h["valid_only"]
        model = v.get("model_cpu_ms_per_request")
        cpu = f"{v['server_cpu_ms_per_request']:.2f}" + (f" ({model:.2f})" if model else "")
        good = h["bad_requests"] - h["bad_unexpected"]
        lines.append(
            f"| {h['server']} | {h['throughput_rps']:,.0f} | {h['p50_ms']:.1f} | "
            f"{h['p99_ms']:.1f} ({h['p99_ms'] / h['p50_ms']:.1f}×) | **{h['valid_errors']}** | "
            f"{good:,} of {h['bad_requests']:,} | "
            f"{v['throughput_rps']:,.0f}, {v['p99_ms']:.1f} | {h['idle_1_client']['p50_ms']:.2f} | "
            f"{cpu} | {h['peak_rss_mb']:.0f} |"
        )
    misses = [
        f"{h['server']}: {kind} got {', '.join(r['got'])}"
        for h in rows
        for kind, r in h["bad_by_kind"].items()
        if r["unexpected"]
    ]

    def want(r: dict[str, Any]) -> str:
        e = r["expected"]
        return " or ".join(map(str, e)) if isinstance(e, list) else str(e)

    kinds = ", ".join(f"{k} ({want(r)})" for k, r in rows[-1]["bad_by_kind"].items())
    lines += ["", f"Bad requests sent, with the status each must get: {kinds}."]
    if misses:
        lines.append("Answered otherwise: " + "; ".join(misses) + ".")
    lines.append(
        "Server CPU per request is the server processes' CPU time (model included) over the "
        "valid-only phase; in brackets the model's own share, timed inside its thread."
    )
    return "\n".join(lines) + "\n"


def pqrnn_block(path: Path) -> str:
    """bench/pqrnn.py: the fused pQRNN kernel against the reference, every path."""
    doc = json.loads(path.read_text())
    env, tr, step, ratio = doc["environment"], doc["training"], doc["training_step"], doc["ratios"]
    rows, runs = doc["runtime"], tr["runs"]
    load = doc["load_average_before"][0], doc["load_average_after"][0]
    lines = [
        f"A default pQRNN trained on Rotten Tomatoes gold labels ({doc['data']['train']:,} "
        f"texts), timed through the light runtime on {doc['data']['test']:,} held-out texts, "
        "tokenisation included; reference = the full ONNX graph, fused = the numba kernel "
        "(`Predictor.load(..., kernel=...)`). Batch-1 p50: on a fresh predictor (first pass, "
        "most tokens new) and once every text has been seen. Generated from "
        f"`bench/results/pqrnn.json` (`{env['command']}`, commit "
        f"{(env['git_commit'] or 'unknown')[:8]}, {env['machine']['cpus']} CPUs, load average "
        f"{load[0]:.1f} before and {load[1]:.1f} after: a shared machine).",
        "",
        "| path | threads | texts/s at batch 256 | x reference | batch-1 p50 ms | "
        "first pass p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        base = rows[f"reference {r['variant']} threads={r['threads']}"]["throughput_tps"]
        lines.append(
            f"| {r['kernel']} {r['variant']} | {r['threads']} | {r['throughput_tps']:,.0f} | "
            f"{r['throughput_tps'] / base:.1f} | {r['p50_ms']:.3f} | "
            f"{r['p50_ms_first_pass']:.3f} | {r['p95_ms']:.3f} |"
        )
    par = doc["parity"]
    lines += [
        "",
        f"Fused vs reference on the test split: fp32 max |diff p| "
        f"{par['fp32']['fused_vs_reference_max_abs_diff']:.1e}; int8 agrees with fp32 on "
        f"{100 * par['int8']['fused_agreement_with_fp32']:.1f}% (fused) and "
        f"{100 * par['int8']['reference_agreement_with_fp32']:.1f}% (reference). Front end "
        "alone, texts/s at batch 256: "
        + "; ".join(f"{k} {v:,.0f}" for k, v in doc["preprocess_tps"].items())
        + ".",
        "",
        "| training (1 thread, batch 64) | seed | s per epoch | test accuracy | macro F1 |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(runs.values(), key=lambda r: (r["seed"], r["kernel"])):
        lines.append(
            f"| {r['kernel']} | {r['seed']} | {r['seconds_per_epoch']:.1f} | "
            f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} |"
        )
    ms, acc = step["step_ms"], tr["accuracy"]
    lines += [
        "",
        "Training paths: `today` = the reference ops featurizing every batch afresh (the "
        "path before this kernel), `reference` = the same ops with the text cache (the "
        "default), `fused` = `kernel: fused`, packed batches (real tokens only) through the "
        f"numba kernel. Per epoch fused is **x{tr['speedup_per_epoch']:.2f}** today's path "
        f"and x{tr['speedup_per_epoch_vs_reference']:.2f} the cached reference (runs "
        f"interleaved; mean test accuracy today {acc['today']:.3f}, reference "
        f"{acc['reference']:.3f}, fused {acc['fused']:.3f}); per step x{step['speedup']:.2f} "
        f"today's ({ms['today']:.0f} ms, reference {ms['reference']:.0f} ms, fused "
        f"{ms['fused']:.0f} ms, interleaved over {step['steps']} batches). "
        "Two fused trainings with one seed end "
        f"with {'the same' if tr['reproducible'] else 'different'} weights. Ratios: int8 "
        f"1-thread throughput x{ratio['int8_1thread_throughput_speedup']:.1f}, batch-1 p50 "
        f"x{ratio['int8_1thread_p50_speedup']:.1f}.",
    ]
    transfer = path.with_name("pqrnn_transfer.json")
    if transfer.exists():
        lines += ["", *pqrnn_transfer_lines(json.loads(transfer.read_text()), transfer.name)]
    return "\n".join(lines) + "\n"


def pqrnn_transfer_lines(doc: dict[str, Any], name: str) -> list[str]:
    """`bench/pqrnn.py --transfer`: the training paths on the demo's transfer set."""
    env, tr, step, data = doc["environment"], doc["training"], doc["training_step"], doc["data"]
    lines = [
        f"On the demo's transfer set ({data['transfer']:,} texts, {data['labels']}; tested on "
        f"{data['test']:,} held-out texts, teacher {data['teacher_test_accuracy']:.3f}), "
        f"generated from `bench/results/{name}` (`{env['command']}`, commit "
        f"{(env['git_commit'] or 'unknown')[:8]}, load average "
        f"{doc['load_average_before'][0]:.1f} before and {doc['load_average_after'][0]:.1f} "
        "after):",
        "",
        "| training on the transfer set (1 thread, batch 64) | seed | s per epoch | "
        "test accuracy | agreement with teacher |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(tr["runs"].values(), key=lambda r: (r["seed"], r["kernel"])):
        lines.append(
            f"| {r['kernel']} | {r['seed']} | {r['seconds_per_epoch']:.1f} | "
            f"{r['accuracy']:.3f} | {r['agreement_with_teacher']:.3f} |"
        )
    acc = tr["accuracy"]
    lines += [
        "",
        f"Per epoch fused is **x{tr['speedup_per_epoch']:.2f}** today's path (CPU time "
        f"x{tr['cpu_speedup_per_epoch']:.2f}) and x{tr['speedup_per_epoch_vs_reference']:.2f} "
        f"the cached reference; per step x{step['speedup']:.2f} today's. Mean test accuracy "
        f"today {acc['today']:.3f}, reference {acc['reference']:.3f}, fused {acc['fused']:.3f}.",
    ]
    return lines


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


def teachers_block(path: Path) -> str:
    """Encoder, LLM (raw, calibrated) and amalgamated teachers, and the student from each."""
    doc = json.loads(path.read_text())
    st, env = doc["settings"], doc["environment"]
    units = list(doc["units"].values())
    lines = [
        f"Rotten Tomatoes, {units[0]['test_size']} test texts, seeds {doc['seeds']}; each teacher "
        f"labels the gold examples + {st['max_pool']} unlabeled pool texts and a `bag` student is "
        f"distilled from it. Encoder: frozen {st['encoder']} + logistic regression. LLM: "
        f"{st['llm']}, {st['shots']}-shot per class, raw or calibrated; amalgamations combine "
        f"the encoder with `{st['amalgamate_llm']}` ({st['mc_samples']} MC-dropout passes for "
        "`uncertainty`). Accuracy, mean ± std over seeds. Generated from "
        f"`bench/results/teachers.json` (`{env['command']}`, commit "
        f"{(env['git_commit'] or 'unknown')[:8]}).",
        "",
    ]

    def cell(e: dict | None) -> str:
        if e is None:
            return "-"
        a = e["accuracy"]
        return f"{a['mean']:.3f} ± {a['std']:.3f}"

    ks = list(doc["summary"])
    lines.append("| teacher | " + " | ".join(f"teacher {k} | student {k}" for k in ks) + " |")
    lines.append("|---|" + "---|---|" * len(ks))
    systems = [s for s in doc["summary"][ks[0]] if not s.startswith("_")]
    for system in systems:
        row = []
        for k in ks:
            e = doc["summary"][k].get(system, {})
            row += [cell(e.get("teacher")), cell(e.get("student"))]
        lines.append(f"| {system} | " + " | ".join(row) + " |")
    agree = doc["summary"][ks[-1]].get("_agreement", {})
    llm = st["amalgamate_llm"]
    if "encoder" in agree and llm in agree["encoder"]:
        lines += [
            "",
            f"Encoder and `{llm}` agree on {100 * agree['encoder'][llm]:.1f}% of the test texts "
            f"at {ks[-1]} (the full agreement matrix is in the JSON).",
        ]
    return "\n".join(lines) + "\n"


RATIONALE_NAMES = {
    "untrained": "untrained (zero-shot, answer format)",
    "answer": "(a) answer only",
    "cot": "(b) rationale then answer (Fine-tune-CoT)",
    "multitask": "(c) multitask (distilling step-by-step)",
    "pinto": "(e) PINTO (frozen prompted rationalizer; its cost included)",
    "knife": "(d) KNIFE (matches a rationale-reading teacher's states)",
}


def _rationale_name(key: str) -> str:
    """A row's name; icl's rows carry their test-time shots (`icl_4shot`, `untrained_4shot`)."""
    m = re.fullmatch(r"(icl|untrained)_(\d+)shot", key)
    if m is None:
        return RATIONALE_NAMES.get(key, key)
    if m.group(1) == "untrained":
        return f"untrained, {m.group(2)}-shot prompts"
    return f"(f) in-context distillation, {m.group(2)}-shot prompts"


def rationale_files(spec: Path) -> list[Path]:
    """The rationale table's result files in the spec's order (`bench/rationale.py --table`
    runs the same list), those that exist."""
    runs = (yaml.safe_load(spec.read_text(encoding="utf-8")) or {}).get("runs") or []
    files = [spec.parents[1] / "results" / str(r["out"]) for r in runs]
    return [p for p in files if p.is_file()]


def rationale_block(path: Path, more: Sequence[Path] = ()) -> str:
    """The rationale table from `path` and, after it, the rows of `more` (runs of
    `bench/rationale.py --steps N`, e.g. `rationale_<N>steps.json`); every row names its own
    training steps, so rows of different budgets never read as one."""
    docs = [(p, json.loads(p.read_text())) for p in [path, *more]]
    doc = docs[0][1]
    lines = [
        f"Truncated SmolLM2-135M students on reasoning-gym tasks, exact match by the task's own "
        "scorer, mean ± sample std over seeds (each seed is a training draw and order, with its "
        "own held-out problems, which no training item shares); greedy decoding on "
        f"{doc['threads']} thread. Rationales come from a programmatic solver, a stand-in for a "
        "large teacher LM. `steps` is each row's training budget. Generated from "
        + "; ".join(_rationale_source(p, d) for p, d in docs)
        + ".",
        "",
        "| task | student | steps | exact match | tokens per answer | s per answer | training s |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, d in docs:
        lines += _rationale_rows(d)
    lines += ["", "Budgets (from each task's recipe, steps as in the table):", ""]
    for _, d in docs:
        for task, t in d["tasks"].items():
            b = t["budget"]
            lines.append(
                f"- {task} (`{t['recipe']}`, options {json.dumps(t['task_options'])}): first "
                f"{t['student']['num_layers']} layers, {b['num_examples']} questions, "
                f"{b['steps']} steps x {b['batch_size']}, lr {b['lr']:g}, label weight "
                f"{b['label_weight']:g} (multitask); generation capped at "
                f"{t['evaluate']['max_new_tokens']} / {t['evaluate']['cot_max_new_tokens']} "
                "(cot) tokens."
            )
    return "\n".join(lines) + "\n"


def _rationale_source(path: Path, doc: dict[str, Any]) -> str:
    env = doc["environment"]
    return (
        f"`bench/results/{path.name}` (`{env['command']}`, commit "
        f"{(env['git_commit'] or 'unknown')[:8]}, {doc['seconds'] / 60:.0f} min)"
    )


def _rationale_rows(doc: dict[str, Any]) -> list[str]:
    rows = []
    for task, t in doc["tasks"].items():
        for key, r in t["results"].items():
            acc = r["accuracy"]
            secs = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "-"
            steps = r.get("train_steps", 0)  # the untrained student: no training
            seeds = len(acc["per_seed"])
            rows.append(
                f"| {task} | {_rationale_name(key)} | {steps} | {acc['mean']:.3f} ± "
                f"{acc['std']:.3f} (n={r['total']}, {seeds} seed{'s' if seeds > 1 else ''}) | "
                f"{r['mean_new_tokens']:.1f} | "
                f"{r['seconds_per_answer']:.3f} | {secs} |"
            )
    return rows


def _pm(entry: dict[str, float] | None) -> str:
    return "-" if not entry else f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def generation_block(path: Path) -> str:
    doc = json.loads(path.read_text())
    env = doc.get("environment", doc)  # early files kept these keys at the top level
    systems = ["teacher", "gold only", "pool", "pool+generated", "generated only"]
    seeds = sorted({r["seed"] for r in doc["runs"]})
    lines = [
        f"Teacher: frozen {doc['teacher']} + logistic regression on the k gold examples; "
        f"student: {doc['student']}; generator: SmolLM2-135M-Instruct, strategy "
        f"`{doc['strategy']}`. Accuracy, mean ± std over seeds {seeds}. Generated from "
        f"`bench/results/generation.json` (`{env['command']}`, commit "
        f"{(env['git_commit'] or 'unknown')[:8]}).",
        "",
        "| dataset | k | " + " | ".join(systems) + " | generated kept | generated/s |",
        "|---|---|" + "---|" * (len(systems) + 2),
    ]
    for ds, by_k in doc["summary"].items():
        gen = doc["generation"][ds].get("generated", {})
        for k, row in by_k.items():
            cells = [_pm(row.get(s, {}).get("accuracy")) for s in systems]
            lines.append(
                f"| {ds} | {k.removeprefix('k=')} | " + " | ".join(cells) + f" | "
                f"{gen.get('kept', 0):,} | {gen.get('kept_per_s', 0.0):.2f} |"
            )
    return "\n".join(lines) + "\n"


def ablation_block(path: Path) -> str:
    """One row per (dataset, k, student, lever): what each lever adds on the same teacher."""
    doc = json.loads(path.read_text())
    env = doc["environment"]
    lines = [
        "Each row is a `tinystudent run` of the demo's recipe with one lever changed (fine-tuned "
        "minilm-l6 teacher unless the lever replaces it, 1 torch thread); the rows of one "
        "dataset share the split, the teacher and its label cache. In `base` the bag read 128 "
        "tokens (its default until `tokens-512` became it), the pQRNN 64 (RT) or 256 (BBC). "
        "Mean ± std over the seeds listed. Generated from "
        f"`bench/results/ablation.json` (`{doc['command']}`, commit "
        f"{(env.get('git_commit') or 'unknown')[:8]}).",
        "",
        "| dataset | k | student | lever | seeds | transfer texts | teacher (mean) | student "
        "| % of teacher | agreement | student ECE | teacher ECE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    teachers: dict[tuple[Any, ...], list[float]] = {}
    for u in doc["units"]:
        key = (u["dataset"], u["k"], u["student"], u["lever"])
        teachers.setdefault(key, []).append(u["teacher_accuracy"])
    for r in doc["summary"]:
        t = teachers[(r["dataset"], r["k"], r["student"], r["lever"])]
        pct = r["pct_of_teacher"]
        lines.append(
            f"| {r['dataset']} | {r['k']} | {r['student']} | {r['lever']} | {len(r['seeds'])} "
            f"| {r['transfer_size']:,} | {sum(t) / len(t):.3f} | {_pm(r['accuracy'])} "
            f"| {pct['mean']:.1f}% | {_pm(r.get('agreement'))} | {_pm(r.get('ece'))} "
            f"| {_pm(r.get('teacher_ece'))} |"
        )
    return "\n".join(lines) + "\n\n![accuracy by lever](bench/results/ablation.png)\n"


def protocol_block(doc: dict[str, Any], out_dir: Path) -> str:
    """A protocol's table (tinystudent.bench.render_markdown) and its two plots."""
    from tinystudent.bench import render_markdown

    name = doc["protocol"]
    try:
        rel = out_dir.resolve().relative_to(ROOT)
    except ValueError:
        rel = out_dir
    plots = [("accuracy vs throughput", "pareto"), ("accuracy vs k", "accuracy-vs-k")]
    if len(doc["spec"]["ks"]) < 2:
        plots = plots[:1]  # one k: no curve to draw
    return (
        render_markdown(doc)
        + "\n"
        + "".join(f"![{alt}]({rel}/{name}-{stem}.png)\n" for alt, stem in plots)
    )


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
    pqrnn = ROOT / "bench" / "results" / "pqrnn.json"
    if pqrnn.exists() and "<!-- pqrnn:start -->" in text:
        text = replace_block(text, "pqrnn", pqrnn_block(pqrnn))
    embeddings = ROOT / "bench" / "results" / "embeddings.json"
    if embeddings.exists():
        text = replace_block(text, "embeddings", embeddings_block(embeddings))
    rationale = rationale_files(ROOT / "bench" / "specs" / "rationale_table.yaml")
    if rationale:
        text = replace_block(text, "rationale", rationale_block(rationale[0], rationale[1:]))
    teachers = ROOT / "bench" / "results" / "teachers.json"
    if teachers.exists():
        text = replace_block(text, "teachers", teachers_block(teachers))
    generation = ROOT / "bench" / "results" / "generation.json"
    if generation.exists() and "<!-- generation:start -->" in text:
        text = replace_block(text, "generation", generation_block(generation))
    ablation = ROOT / "bench" / "results" / "ablation.json"
    if ablation.exists() and "<!-- ablation:start -->" in text:
        text = replace_block(text, "ablation", ablation_block(ablation))
    # the `make bench` protocols (bench/protocol.py), then the peer specs (bench/specs/)
    for name in ("rt", "bbc", *PEER_SPECS):
        path = ROOT / "bench" / "results" / f"{name}.json"
        if path.exists() and f"<!-- bench-{name}:start -->" in text:
            block = protocol_block(json.loads(path.read_text()), path.parent)
            text = replace_block(text, f"bench-{name}", block)
    readme.write_text(text)
    print("README.md updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
