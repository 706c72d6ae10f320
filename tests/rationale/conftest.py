"""Fixtures for rationale distillation: a tiny random Llama with a character-level tokenizer
(any text round-trips, digits included) and small JSONL arithmetic problems, built in the test.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

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


def recipe_file(tmp_path: Path, tiny_lm_dir: Path, **train: object) -> Path:
    """A small multitask recipe on toy JSONL data (24 train, 6 test problems); `train` overrides
    its `train` section."""
    train_path = write_jsonl(tmp_path / "train.jsonl", toy_problems(24, seed=0))
    test_path = write_jsonl(tmp_path / "test.jsonl", toy_problems(6, seed=99, prefix="t"))
    recipe = {
        "name": "toy",
        "data": {"source": "jsonl", "train_path": str(train_path), "test_path": str(test_path)},
        "student": {"model": str(tiny_lm_dir)},
        "train": {
            "mode": "multitask",
            "num_examples": 16,
            "steps": 4,
            "batch_size": 4,
            "lr": 3e-3,
            "max_seq_len": 200,
            "checkpoint_every": 2,
            **train,
        },
        "evaluate": {"batch_size": 4, "max_new_tokens": 4, "cot_max_new_tokens": 12},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path
