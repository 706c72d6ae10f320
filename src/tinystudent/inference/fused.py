"""The fused pQRNN runtime: texts to probabilities without the full ONNX graph.

The full graph evaluates the QRNN gates and the chunked fo-pool scan as many small ops over
padded batches. Here the matrix products run in onnxruntime (`fused.onnx`, see
`tinystudent.export.fused_graph`) and everything between them in three numba loops over the
real tokens only (`fused_kernels`). Each distinct token's first-layer gate products are kept
in a bounded table, so hashing, the bottleneck and the first layer run once per token, not
once per occurrence. numba is optional (`pip install 'tinystudent[fast]'`); without it the
`Predictor` keeps the full graph.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from tinystudent.errors import TinyStudentError
from tinystudent.inference.preprocess import HashProjection, tokenize

EMPTY = ""  # never a token (the tokenizer yields no empty strings): an empty text's position
DEFAULT_CACHE = 16_384  # distinct tokens; 3 KB each with the default config


def load_kernels() -> Any | None:
    """The numba kernels module, or None when numba is not installed."""
    try:
        return importlib.import_module("tinystudent.inference.fused_kernels")
    except ImportError:
        return None


class FusedPQRNN:
    """Runs an exported pQRNN's `fused` graph with the numba kernels; `__call__` mirrors a
    session run on preprocessed texts: texts in, probabilities [B, C] out."""

    def __init__(
        self,
        root: Path,
        meta: dict[str, Any],
        variant: str,
        threads: int | None,
        cache_size: int = DEFAULT_CACHE,
    ) -> None:
        kernels = load_kernels()
        if kernels is None:
            raise TinyStudentError(
                "the fused pQRNN kernel needs numba: pip install 'tinystudent[fast]'"
            )
        import onnxruntime as ort

        self.k = kernels
        spec, pre = meta["fused"], meta["preprocessing"]
        self.layers, self.hidden, self.window = spec["layers"], spec["hidden"], spec["window"]
        self.inputs: list[str] = spec["inputs"]
        self.outputs: list[str] = spec["outputs"]
        self.max_tokens, self.lowercase = int(pre["max_tokens"]), bool(pre.get("lowercase", True))
        self.projection = HashProjection(int(pre["features"]), int(pre["seed"]))
        self.threads = threads
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(root / spec["models"][variant]),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
        self.width = 2 * self.window * 3 * self.hidden
        self.cache_size = max(int(cache_size), 1)
        self._empty = {
            "projection": np.zeros((0, self.projection.features), np.float32),
            "pooled": np.zeros((0, 4 * self.hidden), np.float32),
            **{n: np.zeros((0, 2 * self.hidden), np.float32) for n in self.inputs[2:]},
        }
        self.clear_cache()

    # -- the token table -------------------------------------------------------------------
    def clear_cache(self) -> None:
        self.slots: dict[str, int] = {}
        self.table = np.zeros((min(self.cache_size, 1024), self.width), np.float32)

    def _run(self, output: str, name: str, value: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.session.run([output], {**self._empty, name: value})[0]
        return out

    def _add_tokens(self, tokens: list[str]) -> None:
        proj = np.zeros((len(tokens), self.projection.features), np.float32)
        real = [i for i, t in enumerate(tokens) if t != EMPTY]
        if real:
            proj[real] = self.projection.compute([tokens[i] for i in real])
        used = len(self.slots)
        if used + len(tokens) > len(self.table):  # grow by doubling, rows kept
            grown = np.zeros((max(2 * len(self.table), used + len(tokens)), self.width), np.float32)
            grown[:used] = self.table[:used]
            self.table = grown
        self.table[used : used + len(tokens)] = self._run("table", "projection", proj)
        self.slots.update({t: used + i for i, t in enumerate(tokens)})

    def _lookup(self, flat: list[str]) -> np.ndarray:
        """Each token's table row; new tokens are projected and added, and a full table is
        emptied first (a batch's own tokens always fit: the table grows for them)."""
        found = list(map(self.slots.get, flat))
        if None in found:
            missing = list(dict.fromkeys(t for t, s in zip(flat, found) if s is None))
            if len(self.slots) + len(missing) > self.cache_size:
                self.clear_cache()
                missing = list(dict.fromkeys(flat))
            self._add_tokens(missing)
            found = list(map(self.slots.get, flat))
        return np.array(found, dtype=np.int64)

    # -- the forward pass --------------------------------------------------------------------
    def _kernels(self, texts: int) -> tuple[Any, Any]:
        """The layer and pool kernels for this call. One text has nothing to share out and
        runs in the calling thread: waking a worker costs more than a short text's whole
        recurrence, and on a busy machine a descheduled one stalls the call. A batch runs in
        parallel on `threads` numba threads (None: every core numba has; a per-calling-thread
        setting, so set on every call)."""
        if texts == 1:
            return self.k.qrnn_layer_one, self.k.pool_one
        cores = int(getattr(self.k.numba.config, "NUMBA_NUM_THREADS", 1))
        self.k.numba.set_num_threads(min(self.threads or cores, cores))
        return self.k.qrnn_layer, self.k.pool

    def __call__(self, texts: list[str]) -> np.ndarray:
        toks = [tokenize(t, self.lowercase)[: self.max_tokens] or [EMPTY] for t in texts]
        offsets = np.zeros(len(toks) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in toks], out=offsets[1:])
        flat = [t for tk in toks for t in tk]
        layer_kernel, pool_kernel = self._kernels(len(texts))
        idx = self._lookup(flat)  # may grow or replace the table: look up first
        h = np.empty((len(flat), 2 * self.hidden), np.float32)
        layer_kernel(self.table, idx, offsets, self.window, self.hidden, h)
        steps = np.arange(len(flat), dtype=np.int64)
        for layer in range(1, self.layers):
            rows = self._run(f"gates{layer + 1}", f"states{layer}", h)
            layer_kernel(rows, steps, offsets, self.window, self.hidden, h)
        pooled = np.empty((len(texts), 2 * h.shape[1]), np.float32)
        pool_kernel(h, offsets, pooled)
        return self._run("probs", "pooled", pooled)
