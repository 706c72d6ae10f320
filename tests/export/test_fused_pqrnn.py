"""The fused pQRNN kernel of the light runtime, reached as a user does: export, then
`Predictor.load(..., kernel=...)`, against the full graph (the reference path)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_students import LABELS, PROBE, synthetic, tiny
from tinystudent.errors import TinyStudentError
from tinystudent.export import export_onnx
from tinystudent.inference import Predictor
from tinystudent.inference.predictor import PREPROCESS_FILE
from tinystudent.students import build_student

pytest.importorskip("onnxruntime")
pytest.importorskip("numba")


def _fit(student: torch.nn.Module, epochs: int = 3) -> torch.nn.Module:
    """A few epochs on the synthetic task, so logits have real margins (random weights give
    probabilities near 0.5, where any two paths agree)."""
    texts, labels = synthetic(320, seed=3)
    y = torch.tensor(labels)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    student.train()
    for _ in range(epochs):
        for i in range(0, len(texts), 32):
            logits = student(**student.featurize(texts[i : i + 32])).logits
            loss = torch.nn.functional.cross_entropy(logits, y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return student.eval()


def _lengths_probe(max_tokens: int) -> list[str]:
    """One text of every length from 0 to past `max_tokens` (truncation), plus the probe."""
    words = synthetic(60, seed=9)[0]
    pool = " ".join(words).split()
    return [" ".join(pool[:n]) for n in range(0, max_tokens + 6)] + PROBE


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"window": 1, "layers": 1},
        {"window": 3, "layers": 3, "max_tokens": 200},
    ],
)
def test_fused_equals_the_full_graph_at_every_length(options: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = {"features": 64, "bottleneck": 16, "hidden": 8, "layers": 2, "max_tokens": 40}
    student = _fit(build_student("pqrnn", {**cfg, **options}, LABELS))
    texts = _lengths_probe(student.cfg.max_tokens) + [" ".join(["good film"] * 150)]
    facts = export_onnx(student, tmp_path, int8=True, check_texts=texts)
    assert facts["fused_fp32_max_abs_diff"] <= 1e-5
    fused = Predictor.load(tmp_path, "fp32", threads=1, kernel="fused")
    ref = Predictor.load(tmp_path, "fp32", threads=1, kernel="reference")
    assert (fused.kernel, ref.kernel) == ("fused", "reference")
    batched = fused.predict_proba(texts)
    np.testing.assert_allclose(batched, ref.predict_proba(texts), atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched, student.predict_proba(texts), atol=1e-5, rtol=0)
    assert batched.max() > 0.9  # the comparison is not between two coin flips
    for text in texts[:: max(1, len(texts) // 12)]:  # alone: a batch without padding
        np.testing.assert_allclose(
            fused.predict_proba([text]), ref.predict_proba([text]), atol=1e-5
        )


def test_fused_int8_agrees_with_fp32_and_auto_picks_it(tmp_path: Path) -> None:
    student = _fit(tiny("pqrnn"))
    test_texts, test_labels = synthetic(400, seed=11)
    facts = export_onnx(student, tmp_path, int8=True, check_texts=test_texts)
    assert facts["fused_int8_agreement_with_fp32"] >= 0.99
    auto = Predictor.load(tmp_path, threads=1)
    assert (auto.variant, auto.kernel) == ("int8", "fused")
    p8 = auto.predict_proba(test_texts)
    p32 = Predictor.load(tmp_path, "fp32", kernel="reference").predict_proba(test_texts)
    assert (p32.argmax(1) == np.array(test_labels)).mean() > 0.9
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= 0.99
    meta = json.loads((tmp_path / PREPROCESS_FILE).read_text())
    assert meta["fused"]["models"] == {"fp32": "fused.onnx", "int8": "fused.int8.onnx"}


def test_one_and_two_threads_agree_at_every_length(tmp_path: Path) -> None:
    """One thread, two threads (texts shared out) and one text at a time give the same
    probabilities (lengths 0 to past max_tokens)."""
    student = _fit(tiny("pqrnn"), epochs=1)
    export_onnx(student, tmp_path, int8=True)
    texts = _lengths_probe(student.cfg.max_tokens)
    for variant in ("fp32", "int8"):
        one = Predictor.load(tmp_path, variant, threads=1, kernel="fused")  # type: ignore[arg-type]
        two = Predictor.load(tmp_path, variant, threads=2, kernel="fused")  # type: ignore[arg-type]
        ref = Predictor.load(tmp_path, variant, threads=1, kernel="reference")  # type: ignore[arg-type]
        want = one.predict_proba(texts)
        np.testing.assert_allclose(two.predict_proba(texts), want, atol=1e-6, rtol=0)
        if variant == "int8":  # int8 quantises each call's activations: batch-dependent
            continue
        alone = np.concatenate([two.predict_proba([t]) for t in texts])
        np.testing.assert_allclose(alone, want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(ref.predict_proba(texts), want, atol=1e-5, rtol=0)


def test_a_small_token_table_is_emptied_and_refilled_without_changing_results(
    tmp_path: Path,
) -> None:
    student = _fit(tiny("pqrnn"), epochs=1)
    export_onnx(student, tmp_path)
    fused = Predictor.load(tmp_path, "fp32", threads=1, kernel="fused")
    want = fused.predict_proba(PROBE)
    fused.fused.cache_size = 8  # far fewer than one batch's distinct tokens
    fused.fused.clear_cache()
    for _ in range(2):
        np.testing.assert_allclose(fused.predict_proba(PROBE), want, atol=1e-6)
        np.testing.assert_allclose(fused.predict_proba(PROBE[:3]), want[:3], atol=1e-6)


def _without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    monkeypatch.delitem(sys.modules, "tinystudent.inference.fused_kernels", raising=False)


def test_without_numba_the_full_graph_serves_and_fused_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    student = tiny("pqrnn")
    export_onnx(student, tmp_path / "with", int8=True)
    _without_numba(monkeypatch)
    facts = export_onnx(student, tmp_path / "without", int8=True)
    assert facts["fused_check"].startswith("skipped")
    for d in ("with", "without"):
        p = Predictor.load(tmp_path / d, threads=1)
        assert p.kernel == "reference"
        np.testing.assert_allclose(p.predict_proba(PROBE).sum(1), 1.0, atol=1e-5)
        with pytest.raises(TinyStudentError, match=r"tinystudent\[fast\]"):
            Predictor.load(tmp_path / d, kernel="fused")


def test_other_kinds_have_no_fused_graph(tmp_path: Path) -> None:
    export_onnx(tiny("bag"), tmp_path)
    assert Predictor.load(tmp_path).kernel == "reference"
    with pytest.raises(TinyStudentError, match="no fused fp32 graph"):
        Predictor.load(tmp_path, kernel="fused")
    with pytest.raises(TinyStudentError, match="kernel: expected"):
        Predictor.load(tmp_path, kernel="fast")  # type: ignore[arg-type]
