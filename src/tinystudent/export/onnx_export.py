"""A student to a self-contained ONNX directory: graph(s), preprocessing, and proof they match.

The directory holds `model.onnx` (fp32), optionally `model.int8.onnx` (dynamic int8 from
onnxruntime's `quantize_dynamic`), `preprocess.json` (scheme, hash parameters or vocabulary,
max_tokens, lowercase, input names, label names) and, for the transformer, `tokenizer.json`.
Every file is written atomically and `preprocess.json` last, so a directory that has it is
complete. Before anything is declared done the export is checked on real inputs: the torch-free
preprocessing must produce exactly the student's own features, and the fp32 graph the
student's probabilities to `tolerance`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinystudent.errors import TinyStudentError
from tinystudent.export.fused_graph import check_fused, export_fused, is_fused_kind
from tinystudent.export.traceable import traceable_ops
from tinystudent.inference.predictor import FORMAT, FORMAT_VERSION, PREPROCESS_FILE
from tinystudent.inference.preprocess import HashProjection, Preprocessor, Vocab
from tinystudent.io import atomic_write, write_json, write_text
from tinystudent.students.base import Student

OPSET = 17  # LayerNormalization (transformer) needs 17
MODEL_FP32 = "model.onnx"
MODEL_INT8 = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
OUTPUTS = ["logits", "probs"]
# Traced once: different lengths, so the example has padding (a mask the graph must keep).
TRACE_TEXTS = [
    "a short one",
    "A somewhat longer review, with punctuation: it was great fun, and the cast shines!",
    "dull",
]
# Edge cases every export is checked on, besides any texts the caller passes.
EDGE_TEXTS = [
    "",
    "   ",
    "!!!",
    "Naïve CAFÉ élan — 2024 😀",
    "word",
    " ".join(["long"] * 40 + ["tokens", "past", "the", "limit"] * 30),
]


class ExportError(TinyStudentError):
    """The exported model does not reproduce the student; the message says by how much."""


def preprocess_spec(student: Student) -> tuple[dict[str, Any], dict[str, str]]:
    """The student's preprocessing as JSON, plus any files to write beside it.

    Decided by what the student owns (a hash projection, a vocabulary, a tokenizer), not by
    its kind's name, so a new kind that reuses one of them exports unchanged.
    """
    cfg: Any = student.cfg
    projection = getattr(student, "projection", None)
    vocab = getattr(student, "vocab", None)
    tokenizer = getattr(student, "tokenizer", None)
    if isinstance(projection, HashProjection):
        spec = {
            "scheme": "hash",
            "features": projection.features,
            "seed": int.from_bytes(projection.key, "little"),
            "max_tokens": cfg.max_tokens,
            "lowercase": cfg.lowercase,
        }
        return spec, {}
    if isinstance(vocab, Vocab):
        spec = {
            "scheme": "vocab",
            "max_tokens": cfg.max_tokens,
            "lowercase": cfg.lowercase,
            "words": vocab.state()["words"],
        }
        return spec, {}
    if tokenizer is not None and hasattr(tokenizer, "to_str"):
        if tokenizer.truncation is None or tokenizer.padding is None:
            raise ExportError("the student's tokenizer has no truncation/padding set")
        spec = {"scheme": "wordpiece", "max_tokens": cfg.max_tokens, "tokenizer": TOKENIZER_FILE}
        return spec, {TOKENIZER_FILE: tokenizer.to_str()}
    raise ExportError(
        f"cannot export the preprocessing of a {student.kind!r} student: it has no hash "
        "projection, vocabulary or tokenizer (is it fitted?)"
    )


class _ProbsGraph(nn.Module):
    """What gets traced: the student's forward on positional inputs, logits and probabilities
    out (softmax, or one sigmoid per label for a multi-label student)."""

    def __init__(self, student: Student, input_names: list[str]) -> None:
        super().__init__()
        self.student = student
        self.input_names = input_names

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = dict(zip(self.input_names, (first, second)))
        logits = self.student(**features).logits.float()
        return logits, self.student.probabilities(logits)


def _export_graph(student: Student, input_names: list[str], path: Path) -> None:
    example = student.featurize(TRACE_TEXTS)
    dynamic = {n: {0: "batch", 1: "length"} for n in input_names}
    dynamic.update({n: {0: "batch"} for n in OUTPUTS})
    graph = _ProbsGraph(student, input_names).eval()
    # The legacy TorchScript exporter takes `dynamic_axes` without onnxscript; the dynamo
    # exporter would need it, and cannot express the QRNN's chunk loop anyway. Its tracer
    # warnings are noise here: the result is checked numerically right after.
    with torch.inference_mode(False), torch.no_grad(), traceable_ops(), warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def write(tmp: Path) -> None:
            torch.onnx.export(
                graph,
                tuple(example[n] for n in input_names),
                str(tmp),
                dynamo=False,
                input_names=input_names,
                output_names=OUTPUTS,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                do_constant_folding=True,
            )

        atomic_write(path, write)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger for every run; hush it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        atomic_write(dst, lambda tmp: quantize_dynamic(src, tmp, weight_type=QuantType.QInt8))


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _check_batches(texts: list[str]) -> list[list[str]]:
    """All texts in batches of 64 (much padding), and the first few alone (none)."""
    return [texts[i : i + 64] for i in range(0, len(texts), 64)] + [[t] for t in texts[:8]]


def _probs(session: Any, pre: Preprocessor, texts: list[str], batch_size: int = 256) -> np.ndarray:
    return np.concatenate(
        [
            session.run(["probs"], pre(texts[i : i + batch_size]))[0]
            for i in range(0, len(texts), batch_size)
        ]
    )


def _check_features(student: Student, pre: Preprocessor, batches: list[list[str]]) -> None:
    for batch in batches:
        ours = pre(batch)
        theirs = student.featurize(batch)
        for name, value in theirs.items():
            got = ours[name]
            if got.dtype != value.numpy().dtype or not np.array_equal(got, value.numpy()):
                raise ExportError(
                    f"the runtime's preprocessing differs from the student's on input {name!r}"
                )


def _agreement(student: Student, a: np.ndarray, b: np.ndarray) -> float:
    """Share of texts two graphs decide alike: the top class, or the whole label set."""
    if student.multi_label:
        t = np.asarray(student.thresholds)[None, :]
        return float(((a >= t) == (b >= t)).all(1).mean())
    return float((a.argmax(1) == b.argmax(1)).mean())


def export_onnx(
    student: Student,
    out_dir: str | Path,
    int8: bool = False,
    check_texts: list[str] | None = None,
    tolerance: float = 1e-4,
) -> dict[str, Any]:
    """Export `student` into `out_dir`; returns facts for the model card (files, sizes, the
    largest fp32 probability difference, int8 agreement on the check texts)."""
    try:  # fail before writing anything
        import onnx  # noqa: F401 - quantize_dynamic needs it
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise TinyStudentError(
            f"export needs onnx and onnxruntime: pip install 'tinystudent[export]' ({e.name})"
        ) from e

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    student.eval()
    spec, files = preprocess_spec(student)
    for name, text in files.items():
        write_text(out / name, text)
    input_names = list(student.featurize(TRACE_TEXTS))
    if len(input_names) != 2:
        raise ExportError(f"expected two inputs from featurize, got {input_names}")
    pre = Preprocessor(spec, input_names, out)
    texts = TRACE_TEXTS + EDGE_TEXTS + list(check_texts or [])
    batches = _check_batches(texts)
    _check_features(student, pre, batches)

    _export_graph(student, input_names, out / MODEL_FP32)
    fp32 = _session(out / MODEL_FP32)
    max_diff = 0.0
    with torch.inference_mode():
        for batch in batches:
            ref = student.probabilities(student(**student.featurize(batch)).logits).numpy()
            got = fp32.run(["probs"], pre(batch))[0]
            max_diff = max(max_diff, float(np.abs(ref - got).max()))
    if not max_diff <= tolerance:
        raise ExportError(f"fp32 ONNX probabilities differ from PyTorch by {max_diff:.2e}")
    models = {"fp32": MODEL_FP32}
    facts: dict[str, Any] = {
        "opset": OPSET,
        "check_texts": len(texts),
        "fp32_max_abs_diff": max_diff,
    }
    if int8:
        _quantize(out / MODEL_FP32, out / MODEL_INT8)
        models["int8"] = MODEL_INT8
        p32 = _probs(fp32, pre, texts)
        p8 = _probs(_session(out / MODEL_INT8), pre, texts)
        facts["int8_agreement_with_fp32"] = _agreement(student, p32, p8)
        facts["int8_max_abs_diff"] = float(np.abs(p32 - p8).max())
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": student.kind,
        "label_names": student.label_names,
        "inputs": input_names,
        "outputs": OUTPUTS,
        "models": models,
        "preprocessing": spec,
    }
    if student.multi_label:  # the runtime decides each label at the student's threshold
        meta.update(multi_label=True, thresholds=student.thresholds)
    written = list(models.values())
    if is_fused_kind(student) and not student.multi_label:  # the fused kernel ends in softmax
        meta["fused"] = export_fused(student, out, int8)
        written += list(meta["fused"]["models"].values())
        facts.update(check_fused(student, out, meta, batches, texts, fp32, pre, tolerance))
    facts["size_bytes"] = {name: (out / name).stat().st_size for name in written}
    write_json(out / PREPROCESS_FILE, meta)
    return facts
