"""Load a causal-LM student and save a trained one (safetensors, written atomically)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tinystudent.errors import AssetMissingError, DataError
from tinystudent.io import write_json

META = "rationale_student.json"


def resolve_student(name_or_path: str) -> str:
    """`smollm2-135m` (the packaged default) or a local transformers causal-LM folder."""
    from tinystudent.generate.models import SMOLLM2_NAME, smollm2_dir

    if name_or_path == SMOLLM2_NAME:
        return str(smollm2_dir())
    path = Path(name_or_path).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise AssetMissingError(
            f"student.model {name_or_path!r} is neither {SMOLLM2_NAME!r} nor a local "
            "transformers model folder (with config.json)"
        )
    return str(path)


def truncate_layers(model: Any, num_layers: int) -> Any:
    """Keep the first `num_layers` decoder layers (and the embeddings, final norm and head).

    Why: the lower layers of a pretrained LM still hold its token and position knowledge, so a
    2-4 layer cut of SmolLM2 fine-tunes several times faster than the whole model on a CPU and
    starts far better than random weights. The config is updated, so the saved student reloads
    as the smaller model."""
    inner: Any = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if inner is None or layers is None:
        raise DataError("student.num_layers needs a decoder with model.layers (Llama-style)")
    if num_layers > len(layers):
        raise DataError(f"student.num_layers={num_layers} but the model has {len(layers)} layers")
    inner.layers = layers[:num_layers]
    model.config.num_hidden_layers = num_layers
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = model.config.layer_types[:num_layers]
    return model


def load_student(name_or_path: str, num_layers: int | None = None) -> tuple[Any, Any]:
    """Model (fp32, eval mode) and tokenizer; a tokenizer without pad token pads with EOS.
    With `num_layers`, only the first N decoder layers are kept (`truncate_layers`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_student(name_or_path)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if num_layers is not None:
        truncate_layers(model, num_layers)
    model.eval()
    return model, tok


def save_student(model: Any, tokenizer: Any, target: Path, meta: dict[str, Any]) -> Path:
    """Write the folder beside `target` and rename it into place, so a crash never leaves a
    half-written student that a rerun would trust; `META` (written last inside) records what
    it was trained from."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(work, safe_serialization=True)
        tokenizer.save_pretrained(work)
        write_json(work / META, meta)
        # mkdtemp and some writers make private files; a student is an artifact meant to be shared
        os.chmod(work, 0o755)
        for f in work.iterdir():
            os.chmod(f, 0o644)
        if target.exists():
            shutil.rmtree(target)
        os.rename(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
