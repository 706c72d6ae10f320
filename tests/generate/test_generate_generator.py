"""Generator backends: the transformers one on a tiny random LM, the OpenAI one on a fake wire."""

from __future__ import annotations

from typing import Any

import pytest

from tinystudent.errors import AssetMissingError
from tinystudent.generate.generator import (
    GenerationError,
    Generator,
    OpenAIGenerator,
    TransformersGenerator,
    make_generator,
    urllib_transport,
)
from tinystudent.generate.models import resolve_generator_model

# --------------------------------------------------------------------------- transformers


def test_transformers_generator_samples_new_text_only(tiny_generator: TransformersGenerator):
    assert isinstance(tiny_generator, Generator)
    prompts = ["<s>the film was", "<s>", "<s>a very dull plot and"]
    out = tiny_generator.generate(prompts, max_new_tokens=6, seed=1)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert any(out)
    for text in out:  # continuation only: no special tokens, at most 6 new words
        assert "<s>" not in text and "</s>" not in text and "<pad>" not in text
        assert len(text.split()) <= 6


def test_transformers_generator_is_seeded(tiny_generator: TransformersGenerator):
    prompts = ["<s>"] * 4
    a = tiny_generator.generate(prompts, max_new_tokens=8, seed=3)
    b = tiny_generator.generate(prompts, max_new_tokens=8, seed=3)
    c = tiny_generator.generate(prompts, max_new_tokens=8, seed=4)
    assert a == b
    assert a != c


def test_transformers_generator_greedy_and_empty_prompt(tiny_generator: TransformersGenerator):
    # temperature 0 = greedy: identical prompts give identical texts, whatever the seed
    out = tiny_generator.generate(["", ""], max_new_tokens=5, temperature=0.0, seed=0)
    again = tiny_generator.generate([""], max_new_tokens=5, temperature=0.0, seed=99)
    assert out[0] == out[1] == again[0]


def test_chat_prompts_use_the_chat_template(tiny_generator: TransformersGenerator):
    chat = [{"role": "user", "content": "write one new example"}]
    assert tiny_generator.render(chat) == "<s>user write one new example</s><s>assistant "
    out = tiny_generator.generate([chat, "<s>the"], max_new_tokens=4, seed=0)
    assert len(out) == 2


def test_resolve_generator_model_errors(tmp_path):
    assert resolve_generator_model(str(tmp_path)) == str(tmp_path)
    assert resolve_generator_model("someone/some-lm") == "someone/some-lm"
    with pytest.raises(AssetMissingError, match="neither"):
        resolve_generator_model("no-such-model")


def test_make_generator_rejects_unknown_backend():
    with pytest.raises(GenerationError, match="unknown generator backend"):
        make_generator("telepathy")


# --------------------------------------------------------------------------- OpenAI-compatible


class FakeTransport:
    """Records requests; answers with scripted JSON objects in turn."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, dict[str, str], dict[str, Any], float]] = []

    def __call__(self, url, headers, body, timeout):
        self.requests.append((url, headers, body, timeout))
        return self.answers[(len(self.requests) - 1) % len(self.answers)]


def test_openai_builds_completion_and_chat_requests(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    fake = FakeTransport(
        [
            {"choices": [{"text": "  a raw continuation \n"}]},
            {"choices": [{"message": {"role": "assistant", "content": "a chat answer"}}]},
        ]
    )
    gen = OpenAIGenerator(
        "tiny", base_url="http://127.0.0.1:9/v1/", api_key_env="MY_KEY", transport=fake
    )
    chat = [{"role": "user", "content": "write one"}]
    out = gen.generate(["once upon", chat], max_new_tokens=12, temperature=0.7, top_p=0.9, seed=5)
    assert out == ["a raw continuation", "a chat answer"]

    (url1, headers, body1, _), (url2, _, body2, _) = fake.requests
    assert url1 == "http://127.0.0.1:9/v1/completions"
    assert url2 == "http://127.0.0.1:9/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert headers["Content-Type"] == "application/json"
    assert body1 == {
        "model": "tiny",
        "max_tokens": 12,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 5,
        "n": 1,
        "prompt": "once upon",
    }
    assert body2["messages"] == chat and body2["seed"] == 6  # one seed per prompt
    assert "prompt" not in body2


def test_openai_without_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    gen = OpenAIGenerator("m", base_url="http://x/v1", api_key_env="NO_SUCH_KEY_VAR")
    assert "Authorization" not in gen.headers()


@pytest.mark.parametrize(
    "answer, match",
    [
        ({"choices": []}, "no text"),
        ({"object": "list"}, "no text"),
        ({"choices": [{"message": {"content": None}, "finish_reason": "length"}]}, "finish_reason"),
        ({"error": {"message": "model not found"}}, "model not found"),
    ],
)
def test_openai_raises_clearly_when_endpoint_returns_no_text(answer, match):
    gen = OpenAIGenerator("m", base_url="http://x/v1", transport=FakeTransport([answer]))
    with pytest.raises(GenerationError, match=match):
        gen.generate([[{"role": "user", "content": "hi"}]])


def test_openai_all_empty_answers_is_an_error():
    fake = FakeTransport([{"choices": [{"text": ""}]}])
    gen = OpenAIGenerator("m", base_url="http://x/v1", transport=fake)
    with pytest.raises(GenerationError, match="empty text for all 2 prompts"):
        gen.generate(["a", "b"])


def test_urllib_transport_reports_an_unreachable_endpoint():
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(GenerationError, match="cannot reach"):
        urllib_transport("http://127.0.0.1:9/v1/completions", {}, {"prompt": "x"}, 2.0)
