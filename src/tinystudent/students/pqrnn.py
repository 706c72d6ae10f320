"""pQRNN (Kaliamoorthi et al. 2021): hashed ternary token projection -> bottleneck -> BiQRNN.

No embedding table: the only parameters are the bottleneck, the QRNN gates and the classifier,
so the model stays a few hundred thousand parameters whatever the vocabulary.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from tinystudent.errors import TinyStudentError
from tinystudent.students import qrnn_fused
from tinystudent.students.base import Student, StudentConfig, StudentOutput
from tinystudent.students.hashing import HashProjection
from tinystudent.students.qrnn import BiQRNN
from tinystudent.students.text_rows import TextRows


class PQRNNConfig(StudentConfig):
    features: int = Field(256, ge=32, description="projection width (multiple of 32)")
    bottleneck: int = Field(128, ge=8)
    hidden: int = Field(64, ge=8, description="QRNN units per direction")
    layers: int = Field(2, ge=1, le=6)
    window: int = Field(2, ge=1, le=4)
    zoneout: float = Field(0.1, ge=0, lt=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    max_tokens: int = Field(64, ge=1)
    lowercase: bool = True
    hash_seed: int = Field(0, ge=0)
    text_cache: int = Field(
        200_000,
        ge=0,
        description="texts (and as many distinct tokens) whose token rows featurize keeps "
        "between calls, as training featurizes the same texts each epoch; 0: none",
    )
    kernel: Literal["auto", "fused", "reference"] = Field(
        # reference by default: training numerics must not depend on whether numba is
        # installed (the fused kernel agrees to ~1e-6, not bit for bit), and the demo's
        # published figures come from this path.
        "reference",
        description="QRNN gates + fo-pool in training: the tensor-op reference, the numba "
        "kernel (fused; needs tinystudent[fast]), or fused when numba is installed (auto)",
    )


class PQRNN(Student):
    kind: ClassVar[str] = "pqrnn"
    Config: ClassVar[type[StudentConfig]] = PQRNNConfig
    cfg: PQRNNConfig

    def __init__(self, cfg: PQRNNConfig, label_names: list[str]) -> None:
        super().__init__(cfg, label_names)
        self.projection = HashProjection(cfg.features, cfg.hash_seed)
        self.text_rows = None
        if cfg.text_cache:
            self.text_rows = TextRows(
                self.projection, cfg.text_cache, cfg.max_tokens, cfg.lowercase
            )
        self.bottleneck = nn.Sequential(nn.Linear(cfg.features, cfg.bottleneck), nn.ReLU())
        dims = [cfg.bottleneck] + [2 * cfg.hidden] * (cfg.layers - 1)
        if cfg.kernel == "fused" and not qrnn_fused.available():
            raise TinyStudentError(
                "student.kernel: fused needs numba: pip install 'tinystudent[fast]'"
            )
        fused = cfg.kernel != "reference"
        self.fused = fused and qrnn_fused.available()
        self.qrnn = nn.ModuleList(
            BiQRNN(d, cfg.hidden, cfg.window, cfg.zoneout, fused) for d in dims
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(4 * cfg.hidden, len(label_names))

    def featurize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """`projection` [B, L, F] + `mask` [B, L]; in training with the fused kernel on the
        CPU, the packed form instead (`TextRows.packed`: each distinct token's vector once,
        the real positions only), which spares the step the padded array, its gather and
        the bottleneck product on repeated tokens. Export and evaluation run in eval mode
        and always see the two padded inputs."""
        if self._packs():
            assert self.text_rows is not None
            packed = self.text_rows.packed(texts)
            if packed is not None:
                return {k: torch.from_numpy(v) for k, v in packed.items()}
        if self.text_rows is not None:
            proj, mask = self.text_rows.batch(texts)
        else:
            proj, mask = self.projection.batch(texts, self.cfg.max_tokens, self.cfg.lowercase)
        return {"projection": torch.from_numpy(proj), "mask": torch.from_numpy(mask)}

    def _packs(self) -> bool:
        """Whether `featurize` gives the packed form (see there)."""
        return (
            self.fused
            and self.training
            and self.text_rows is not None
            and self.head.weight.device.type == "cpu"
        )

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        """nn.Dropout, or with the fused kernel the same distribution from the kernels'
        counter-based generator, ~10x as fast on CPU as torch's per-element Bernoulli
        sampling (other draws than the reference's, as zoneout's are: the kernels agree in
        eval mode, not in sampling)."""
        p = self.dropout.p
        if not (self.fused and self.training and p > 0 and x.device.type == "cpu"):
            out: torch.Tensor = self.dropout(x)
            return out
        return qrnn_fused.dropout(x, p)

    def forward(self, **features: torch.Tensor) -> StudentOutput:
        if "tokens" in features:  # featurize's packed form
            tokens, mask = features["tokens"], features["mask"]
            if self.fused and qrnn_fused.can_fuse(tokens):
                x = self.bottleneck(tokens).index_select(0, features["token_rows"])
                return self._packed_layers(x, mask, features["positions"], features["starts"])
            features = {"projection": unpacked_projection(features), "mask": mask}
        projection, mask = features["projection"], features["mask"]
        packed = qrnn_fused.pack(mask) if self.fused and qrnn_fused.can_fuse(projection) else None
        if packed is not None:
            rows, starts = packed
            x = self.bottleneck(projection.reshape(-1, projection.shape[-1])[rows])
            return self._packed_layers(x, mask, rows, starts)
        else:
            # Padding must stay exactly zero: ReLU(bias) is not, and the backward QRNN's
            # window would read it beside the last real token, making outputs depend on
            # the batch.
            h = self._dropout(self.bottleneck(projection)) * mask.unsqueeze(-1)
            hidden_states = []
            for layer in self.qrnn:
                h = self._dropout(layer(h, mask))
                hidden_states.append(h)
        h, m = hidden_states[-1], mask.unsqueeze(-1)
        mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        mx = h.masked_fill(m == 0, float("-inf")).amax(1)
        pooled = torch.cat([mean, mx], dim=-1)
        return StudentOutput(
            logits=self.head(pooled), pooled=pooled, hidden_states=tuple(hidden_states)
        )

    def _packed_layers(
        self, x: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor
    ) -> StudentOutput:
        """The output from the bottleneck's output x [N, D] on the real tokens only: the
        gate products and the pooling run on [N, D] rows, not on the padded batch (`rows`:
        each row's flat index in [B, L]; `starts`: each text's first row); the layers'
        outputs are scattered back to [B, L, 2H] (zero-padded) for `hidden_states`."""
        h = self._dropout(x)
        hidden_states = []
        for layer in self.qrnn:
            h = self._dropout(qrnn_fused.packed_biqrnn(layer, h, starts))
            hidden_states.append(qrnn_fused.unpack(h, rows, mask.shape))
        pooled = qrnn_fused.packed_pool(h, starts)
        return StudentOutput(
            logits=self.head(pooled), pooled=pooled, hidden_states=tuple(hidden_states)
        )


def unpacked_projection(features: dict[str, torch.Tensor]) -> torch.Tensor:
    """The padded projection [B, L, F] of `featurize`'s packed form."""
    tokens, mask = features["tokens"], features["mask"]
    out = tokens.new_zeros(mask.numel(), tokens.shape[1])
    out[features["positions"]] = tokens[features["token_rows"]]
    return out.view(*mask.shape, tokens.shape[1])
