"""Strategies: fine-tune-then-sample on the tiny LM; label prompts with a scripted generator."""

from __future__ import annotations

import pytest

from tinystudent.generate.generator import GenerationError, OpenAIGenerator
from tinystudent.generate.strategies import (
    FinetuneSampler,
    PromptSampler,
    clean_completion,
    document_prefix,
    finetune_causal_lm,
)


def test_finetune_lowers_the_lm_loss_on_in_domain_text(tiny_generator):
    texts = ["the film was great and fun", "the movie was dull and boring"] * 4
    losses = finetune_causal_lm(
        tiny_generator.model, tiny_generator.tokenizer, texts, steps=12, lr=3e-2, batch_size=4
    )
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    assert not tiny_generator.model.training  # back in eval mode for sampling


def test_finetune_sampler_learns_then_samples(tiny_generator):
    sampler = FinetuneSampler(tiny_generator, max_new_tokens=8, temperature=0.7)
    assert sampler.prefix == "<s>assistant "  # the chat template's assistant-turn opening
    texts = ["the film was great and fun", "the movie was dull and boring"] * 4
    sampler.fine_tune(texts, steps=25, lr=3e-2, batch_size=8, seed=0)
    out = sampler.propose(4, seed=1)
    assert len(out) == 4 and all("\n" not in t for t in out)
    in_domain = {w for t in texts for w in t.split()}
    words = [w for t in out for w in t.split()]
    assert words and sum(w in in_domain for w in words) / len(words) > 0.8


def test_document_prefix_without_a_chat_template(tiny_generator):
    tok = tiny_generator.tokenizer
    assert document_prefix(tok) == "<s>assistant "
    tok.chat_template = None
    assert document_prefix(tok) == "<s>"


def test_finetune_stops_at_the_deadline(tiny_generator):
    losses = finetune_causal_lm(
        tiny_generator.model, tiny_generator.tokenizer, ["a film"], steps=50, deadline=0.0
    )
    assert losses == []


def test_finetune_needs_a_local_model():
    sampler = FinetuneSampler(OpenAIGenerator("m", base_url="http://x/v1"))
    with pytest.raises(GenerationError, match="cannot be fine-tuned"):
        sampler.fine_tune(["a text"], steps=1)


def test_prompt_sampler_shows_examples_of_one_class(fake_generator_cls):
    fake = fake_generator_cls(['Sure! Here is a new review:\n\n"A delightful ride."'])
    texts = ["good one", "fine one", "bad one", "awful one", "nice one"]
    labels = [0, 0, 1, 1, 0]
    s = PromptSampler(fake, ["positive", "negative"], texts, labels, shots=2, domain="reviews")
    out = s.propose(4, seed=0)
    assert out == ["A delightful ride."] * 4
    assert s.last_labels == [0, 1, 0, 1]  # classes in turn
    (prompts,) = fake.calls
    for chat, y in zip(prompts, s.last_labels):
        assert isinstance(chat, list) and chat[0]["role"] == "user"
        content = chat[0]["content"]
        name = ["positive", "negative"][y]
        assert f'labeled "{name}"' in content
        shown = [t for t in texts if f"- {t}" in content]
        assert len(shown) == 2 and all(labels[texts.index(t)] == y for t in shown)
    assert s.echo_texts and all("{" not in e for e in s.echo_texts)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("A delightful ride.", "A delightful ride."),
        ("Sure! Here's a new review:\nA tense, clever thriller.", "A tense, clever thriller."),
        ('"A tense, clever thriller."', "A tense, clever thriller."),
        ("1. A tense,   clever thriller.\n2. Another one.", "A tense, clever thriller."),
        ("Review: A tense thriller.", "A tense thriller."),
        ("Here is one:\n", ""),
        ("", ""),
    ],
)
def test_clean_completion(raw, clean):
    assert clean_completion(raw) == clean
