"""ONNX export: dynamic shapes, parity with PyTorch, int8, the torch-free runtime, the card."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_students import KINDS, LABELS, PROBE, synthetic, tiny
from tinystudent.cli import main
from tinystudent.errors import TinyStudentError
from tinystudent.export import ExportError, export_onnx, preprocess_spec
from tinystudent.export.traceable import fo_pool_traceable
from tinystudent.inference import Predictor
from tinystudent.inference.predictor import PREPROCESS_FILE
from tinystudent.students import build_student, qrnn

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.mark.parametrize("length", [1, 5, 16, 17, 33, 64, 100])
def test_traceable_fo_pool_equals_the_chunk_loop(length: int) -> None:
    torch.manual_seed(length)
    log_f = torch.nn.functional.logsigmoid(torch.randn(3, length, 8) * 4)  # some hit the clamp
    u = torch.randn(3, length, 8)
    assert torch.allclose(fo_pool_traceable(log_f, u), qrnn.fo_pool(log_f, u), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_fp32_graph_matches_pytorch_with_dynamic_batch_and_length(kind: str, tmp_path: Path):
    student = tiny(kind)
    facts = export_onnx(student, tmp_path, int8=True)
    assert facts["fp32_max_abs_diff"] <= 1e-4

    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    for inp in graph.input:
        dims = inp.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims][:2] == ["batch", "length"], inp.name

    fp32 = Predictor.load(tmp_path, "fp32", threads=1)
    # One padded batch, then each text alone: every batch size and length the probe has.
    np.testing.assert_allclose(fp32.predict_proba(PROBE), student.predict_proba(PROBE), atol=1e-4)
    for text in PROBE[:6]:
        np.testing.assert_allclose(
            fp32.predict_proba([text]), student.predict_proba([text]), atol=1e-4
        )
    int8 = Predictor.load(tmp_path, threads=1)  # "auto" prefers the int8 graph
    assert int8.variant == "int8"
    probs = int8.predict_proba(PROBE)
    assert probs.shape == (len(PROBE), 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def _trained_pqrnn() -> torch.nn.Module:
    """A tiny pQRNN fitted to the synthetic task, so predictions have real margins."""
    student = tiny("pqrnn")
    texts, labels = synthetic(400, seed=3)
    y = torch.tensor(labels)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    student.train()
    for _ in range(4):
        for i in range(0, len(texts), 32):
            logits = student(**student.featurize(texts[i : i + 32])).logits
            loss = torch.nn.functional.cross_entropy(logits, y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return student.eval()


def test_int8_agrees_with_fp32_on_a_trained_student(tmp_path: Path) -> None:
    student = _trained_pqrnn()
    test_texts, test_labels = synthetic(400, seed=11)
    facts = export_onnx(student, tmp_path, int8=True, check_texts=test_texts)
    p32 = Predictor.load(tmp_path, "fp32").predict_proba(test_texts)
    p8 = Predictor.load(tmp_path, "int8").predict_proba(test_texts)
    assert (p32.argmax(1) == np.array(test_labels)).mean() > 0.9  # it did learn the task
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= 0.99
    assert facts["int8_agreement_with_fp32"] >= 0.99


def test_export_directory_is_self_contained(tmp_path: Path) -> None:
    student = tiny("transformer")  # the one kind with a file beside preprocess.json
    export_onnx(student, tmp_path / "a")
    moved = tmp_path / "elsewhere" / "b"
    shutil.copytree(tmp_path / "a", moved)
    shutil.rmtree(tmp_path / "a")
    meta = json.loads((moved / PREPROCESS_FILE).read_text())
    assert meta["preprocessing"]["scheme"] == "wordpiece"
    assert meta["label_names"] == LABELS and meta["inputs"] == ["input_ids", "attention_mask"]
    got = Predictor.load(moved).predict_proba(PROBE)
    np.testing.assert_allclose(got, student.predict_proba(PROBE), atol=1e-4)


def test_preprocess_json_records_each_scheme(tmp_path: Path) -> None:
    spec, files = preprocess_spec(tiny("pqrnn"))
    want = {"scheme": "hash", "features": 64, "seed": 0, "max_tokens": 40, "lowercase": True}
    assert spec == want
    assert files == {}
    spec, _ = preprocess_spec(tiny("bag"))
    assert spec["scheme"] == "vocab" and "good" in spec["words"] and "<pad>" not in spec["words"]


def test_an_unfitted_transformer_is_refused(tmp_path: Path) -> None:
    student = build_student("transformer", {"init": "random", "tokenizer": "trained"}, LABELS)
    with pytest.raises(ExportError, match="cannot export the preprocessing"):
        export_onnx(student, tmp_path)


def test_a_failed_check_leaves_no_loadable_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="differ from PyTorch"):
        export_onnx(tiny("bag"), tmp_path, tolerance=-1.0)
    assert not (tmp_path / PREPROCESS_FILE).exists()
    with pytest.raises(TinyStudentError, match="not an exported model"):
        Predictor.load(tmp_path)


def test_predictor_input_checks(tmp_path: Path) -> None:
    export_onnx(tiny("cnn"), tmp_path)
    p = Predictor.load(tmp_path)
    assert p.variant == "fp32"
    assert p.predict_proba([]).shape == (0, 2)
    with pytest.raises(TypeError):
        p.predict_proba("not a list")  # type: ignore[arg-type]
    with pytest.raises(TinyStudentError, match="re-export with --int8"):
        Predictor.load(tmp_path, "int8")
    pred = p.predict(["good film", "dull plot"])
    assert [x.label for x in pred] == [max(x.probs, key=x.probs.__getitem__) for x in pred]
    assert all(abs(sum(x.probs.values()) - 1) < 1e-5 for x in pred)


def test_light_runtime_never_imports_torch(tmp_path: Path) -> None:
    """Serving needs numpy, onnxruntime and tokenizers only: checked in a fresh interpreter."""
    for kind in ("pqrnn", "bag", "transformer"):  # one of each preprocessing scheme
        export_onnx(tiny(kind), tmp_path / kind, int8=True)
    code = f"""
import sys
from tinystudent.inference import Predictor
for kind in ("pqrnn", "bag", "transformer"):
    preds = Predictor.load({str(tmp_path)!r} + "/" + kind).predict(["a good film", ""])
    assert len(preds) == 2 and preds[0].label in ("neg", "pos")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
assert not heavy, heavy
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_cli_export_writes_a_card_from_the_run(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    student = tiny("pqrnn")
    student.save(run / "student")
    texts, labels = synthetic(30, seed=5)
    (run / "data").mkdir()
    (run / "data" / "split.json").write_text(
        json.dumps({"label_names": LABELS, "test_texts": texts, "test_labels": labels})
    )
    report = {
        "name": "toy-k8",
        "dataset": "toy",
        "k": 8,
        "seed": 0,
        "test_size": 30,
        "transfer_size": 80,
        "teacher": {"name": "tiny-bert", "accuracy": 0.9, "macro_f1": 0.9, "params": 1000},
        "student": {"accuracy": 0.5, "macro_f1": 0.4, "agreement_with_teacher": 0.5},
    }
    (run / "report.json").write_text(json.dumps(report))
    assert main(["export", str(run), "--format", "onnx", "--int8"]) == 0
    out = run / "student-onnx"  # the default: beside the student
    assert {p.name for p in out.iterdir()} >= {
        "model.onnx",
        "model.int8.onnx",
        "preprocess.json",
        "card.json",
        "README.md",
    }
    card = json.loads((out / "card.json").read_text())
    assert card["teacher"]["name"] == "tiny-bert" and card["data"]["k"] == 8
    assert set(card["metrics"]) == {"student (PyTorch)", "ONNX fp32", "ONNX int8"}
    assert card["latency"]["threads"] == 1 and card["latency"]["p50_ms"] > 0
    assert card["export"]["command"].startswith("tinystudent export")
    readme = (out / "README.md").read_text()
    assert "tiny-bert" in readme and "k = 8" in readme and "int8" in readme
    assert "exported:" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nowhere")]) == 2


@pytest.mark.integration
def test_demo_student_int8_agrees_on_the_test_split(tmp_path: Path) -> None:
    """The demo run, when present: fp32 parity and int8 agreement on real held-out text."""
    from tinystudent.students import load_student

    run = Path(__file__).resolve().parents[2] / "runs" / "demo"
    if not (run / "student" / "student.json").exists():
        pytest.skip("no demo run (make demo)")
    texts = json.loads((run / "data" / "split.json").read_text())["test_texts"][:600]
    facts = export_onnx(load_student(run / "student"), tmp_path, int8=True, check_texts=texts)
    assert facts["fp32_max_abs_diff"] <= 1e-4
    p32 = Predictor.load(tmp_path, "fp32").predict_proba(texts)
    p8 = Predictor.load(tmp_path, "int8").predict_proba(texts)
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= 0.99
