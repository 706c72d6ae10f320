"""Fixtures for rationale distillation: a tiny random Llama with a character-level tokenizer
(any text round-trips, digits included) and small JSONL arithmetic problems, built in the test.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.tiny_lm import SPECIALS, save_tiny_llama
from tinystudent.rationale.data import Example

CHARS = [chr(c) for c in range(32, 127)] + ["\n"]


def make_tiny_lm(out: Path, seed: int = 0) -> Path:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return save_tiny_llama(out, tok, seed)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_causal_lm"))


def toy_problems(n: int, seed: int = 0, prefix: str = "q") -> list[Example]:
    """`a + b` word problems whose rationale shows the sum."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        out.append(
            Example(
                id=f"{prefix}-{i}",
                question=f"Ann has {a} apples and gets {b} more. How many now?",
                answer=str(a + b),
                rationale=f"She has {a}. Then {a}+{b}={a + b}.",
            )
        )
    return out


def write_jsonl(path: Path, examples: list[Example], with_rationale: bool = True) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for e in examples:
            row = {"question": e.question, "answer": e.answer}
            if with_rationale:
                row["rationale"] = e.rationale
            f.write(json.dumps(row) + "\n")
    return path
