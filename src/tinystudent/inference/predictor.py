"""`Predictor`: run an exported student with onnxruntime, preprocessing included.

An export directory holds everything needed (see `tinystudent.export`): the ONNX graph(s),
`preprocess.json` (scheme, hash parameters or vocabulary, max_tokens, label names) and, for
the transformer, `tokenizer.json`. Nothing here imports torch or transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tinystudent.errors import TinyStudentError
from tinystudent.inference.preprocess import Preprocessor
from tinystudent.io import read_json

PREPROCESS_FILE = "preprocess.json"
CARD_FILE = "card.json"
FORMAT = "tinystudent-onnx"
FORMAT_VERSION = 1
Variant = Literal["auto", "fp32", "int8"]
# "fused": the pQRNN's numba kernel (tinystudent.inference.fused); "reference": the full graph;
# "auto": fused where the export has it and numba is installed, else the full graph.
Kernel = Literal["auto", "fused", "reference"]


@dataclass(frozen=True)
class Prediction:
    """One text's most likely label, its probability, and every label's probability.

    `labels` is the text's label set: for a multi-label model every label whose probability
    reaches its threshold (possibly none), otherwise the one best label."""

    label: str
    score: float
    probs: dict[str, float]
    labels: tuple[str, ...] = ()


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise TinyStudentError(
            "the light runtime needs onnxruntime: pip install 'tinystudent[export]'"
        ) from e
    return onnxruntime


def read_export_meta(model_dir: str | Path) -> dict[str, Any]:
    """preprocess.json of an export directory; it is written last, so its presence means the
    directory is complete."""
    path = Path(model_dir) / PREPROCESS_FILE
    if not path.exists():
        hint = ""
        if (Path(model_dir) / "student.json").exists() or (Path(model_dir) / "student").is_dir():
            hint = f"; export it first: tinystudent export {model_dir} --format onnx --int8"
        raise TinyStudentError(f"{model_dir}: no {PREPROCESS_FILE}, not an exported model{hint}")
    meta: dict[str, Any] = read_json(path)
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise TinyStudentError(
            f"{path}: format {meta.get('format')!r} v{meta.get('format_version')} is not one "
            f"this version reads ({FORMAT} v{FORMAT_VERSION})"
        )
    return meta


def _fused_runner(
    root: Path, meta: dict[str, Any], variant: str, threads: int | None, kernel: str
) -> Any | None:
    """The fused kernel's runner when `kernel` asks for it (or "auto" and it can run)."""
    if kernel not in ("auto", "fused", "reference"):
        raise TinyStudentError(f"kernel: expected auto, fused or reference, got {kernel!r}")
    if kernel == "reference":
        return None
    from tinystudent.inference.fused import FusedPQRNN, load_kernels

    has = variant in meta.get("fused", {}).get("models", {})
    if kernel == "fused" and not has:
        raise TinyStudentError(
            f"{root}: no fused {variant} graph here (only pQRNN exports have one; re-export "
            "with this version)"
        )
    if not has or (kernel == "auto" and load_kernels() is None):
        return None
    return FusedPQRNN(root, meta, variant, threads)


class Predictor:
    """Texts in, probabilities out. Build with `Predictor.load(export_dir)`."""

    def __init__(
        self,
        session: Any,
        preprocessor: Preprocessor,
        label_names: list[str],
        meta: dict[str, Any],
        model_dir: Path,
        variant: str,
        fused: Any | None = None,
    ) -> None:
        self.session = session
        self.preprocessor = preprocessor
        self.label_names = list(label_names)
        self.meta = meta
        self.model_dir = model_dir
        self.variant = variant
        self.fused = fused
        self.kernel = "fused" if fused is not None else "reference"

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        variant: Variant = "auto",
        threads: int | None = None,
        kernel: Kernel = "auto",
    ) -> Predictor:
        """`variant="auto"` takes the int8 graph when the export has one. `threads` pins
        onnxruntime's (and the fused kernel's) intra-op threads (None: all cores). `kernel`
        picks the pQRNN's fused kernel or the full graph (see `Kernel`)."""
        ort = _import_ort()
        root = Path(model_dir)
        meta = read_export_meta(root)
        models: dict[str, str] = meta["models"]
        chosen = ("int8" if "int8" in models else "fp32") if variant == "auto" else variant
        if chosen not in models:
            hint = "; re-export with --int8" if chosen == "int8" else ""
            raise TinyStudentError(f"{root}: no {chosen} model here (has {sorted(models)}){hint}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(
            str(root / models[chosen]), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        pre = Preprocessor(meta["preprocessing"], meta["inputs"], root)
        fused = _fused_runner(root, meta, chosen, threads, kernel)
        return cls(session, pre, meta["label_names"], meta, root, chosen, fused)

    @property
    def thresholds(self) -> list[float] | None:
        """Per-label decision thresholds of a multi-label export; None for single-label."""
        if not self.meta.get("multi_label"):
            return None
        return [float(t) for t in self.meta["thresholds"]]

    @property
    def card(self) -> dict[str, Any]:
        """The model card's facts (teacher, data, metrics) when the export has one."""
        path = self.model_dir / CARD_FILE
        card: dict[str, Any] = read_json(path) if path.exists() else {}
        return card

    def predict_proba(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """[len(texts), labels] float32 in input order; batches are length-sorted to limit
        padding, as in `Student.predict_proba`."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of strings")
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            batch = [texts[j] for j in idx]
            if self.fused is not None:
                out[idx] = self.fused(batch)
            else:
                out[idx] = self.session.run(["probs"], self.preprocessor(batch))[0]
        return out

    def predict(self, texts: list[str], batch_size: int = 256) -> list[Prediction]:
        probs = self.predict_proba(texts, batch_size)
        thresholds = self.thresholds
        preds = []
        for row in probs:
            best = int(row.argmax())
            if thresholds is None:
                chosen: tuple[str, ...] = (self.label_names[best],)
            else:
                chosen = tuple(n for n, p, t in zip(self.label_names, row, thresholds) if p >= t)
            preds.append(
                Prediction(
                    label=self.label_names[best],
                    score=float(row[best]),
                    probs={n: float(p) for n, p in zip(self.label_names, row)},
                    labels=chosen,
                )
            )
        return preds
