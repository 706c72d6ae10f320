"""Fixtures for the generate stage: a tiny random causal LM and a toy split, built in the test.

No downloads: the tokenizer is a word-level `tokenizers` model over the toy vocabulary, the LM
a 2-layer, 32-wide Llama. Its samples are word salad, which is all the plumbing needs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.tiny_lm import save_tiny_llama, word_level
from tinystudent.data.split import Split
from tinystudent.generate.generator import Prompt

POS = ["great", "wonderful", "moving", "brilliant", "fun", "superb", "charming"]
NEG = ["awful", "boring", "dull", "terrible", "messy", "tedious", "bland"]
FILL = ["the", "film", "movie", "was", "plot", "actors", "story", "and", "a", "very", "this"]
CHAT = ["user", "assistant", "write", "one", "new", "example", "labeled", "pos", "neg"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }} {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant {% endif %}"
)


def toy_text(rng: random.Random, label: int, i: int) -> str:
    words = rng.sample(FILL, 5) + [rng.choice(POS if label == 0 else NEG)]
    rng.shuffle(words)
    return " ".join(words) + f" number{i}"


@pytest.fixture()
def toy_split() -> Split:
    """2 classes, 4 gold each, 40 pool texts, 10 test texts: all distinct."""
    rng = random.Random(0)
    texts = [toy_text(rng, i % 2, i) for i in range(58)]
    labels = [i % 2 for i in range(58)]
    return Split(
        label_names=["pos", "neg"],
        train_texts=texts[:8],
        train_labels=labels[:8],
        test_texts=texts[8:18],
        test_labels=labels[8:18],
        pool=texts[18:],
    )


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tok = word_level(POS + NEG + FILL + CHAT)
    out = tmp_path_factory.mktemp("tiny_lm")
    return save_tiny_llama(out, tok, max_positions=128, chat_template=CHAT_TEMPLATE)


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """A 32-wide model gains nothing from threads, and on a busy machine they only wait."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny_generator(tiny_lm_dir: Path, one_thread: None):
    """A fresh copy per test: the fine-tune strategy trains the model in place."""
    from tinystudent.generate.generator import TransformersGenerator

    return TransformersGenerator.from_pretrained(str(tiny_lm_dir), batch_size=4)


class FakeGenerator:
    """Returns scripted texts in order (cycling), and records every call."""

    def __init__(self, texts: Sequence[str], name: str = "fake") -> None:
        self.texts = list(texts)
        self.name = name
        self.calls: list[list[Prompt]] = []
        self.served = 0

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
    ) -> list[str]:
        self.calls.append(list(prompts))
        out = []
        for _ in prompts:
            out.append(self.texts[self.served % len(self.texts)])
            self.served += 1
        return out


@pytest.fixture()
def fake_generator_cls() -> type[FakeGenerator]:
    return FakeGenerator
