"""A tiny random Llama and a word-level tokenizer for the LLM teacher, built in the test.

The vocabulary holds the toy review words plus the prompt's own words, so every prompt piece
tokenises to real ids; the model is 2 layers x 32 wide, so a scoring pass takes milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FILLER, NEGATIVE, POSITIVE
from tests.tiny_lm import save_tiny_llama, word_level

PROMPT_WORDS = ["Text", "Label", "Classify", "each", "text", "as", "one", "of", ":", ".", ","]
LABEL_WORDS = ["pos", "neg", "very", "good", "bad", "N", "/", "A", "[", "]", "MASK"]


def build_tiny_lm(out: Path, attention_dropout: float = 0.0, seed: int = 0) -> Path:
    words = POSITIVE + NEGATIVE + FILLER + PROMPT_WORDS + LABEL_WORDS + [str(i) for i in range(10)]
    return save_tiny_llama(out, word_level(words), seed, attention_dropout)


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_llm"))
