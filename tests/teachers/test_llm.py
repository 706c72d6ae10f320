"""The LLM teacher on a tiny random Llama: scoring, prefix cache, calibration, HTTP backend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import toy_rows
from tests.teachers.conftest import build_tiny_lm
from tinystudent.teachers.llm import (
    LLMTeacher,
    LLMTeacherConfig,
    LLMTeacherError,
    OpenAIScorer,
    TransformersScorer,
    contextual_bias,
    fit_temperature_bias,
    kv_cache_argument,
    kv_cache_of,
    pick_shots,
)

LABELS = ["pos", "neg"]


def _data(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    rows = toy_rows(n, seed=seed)
    return [t for t, _ in rows], [LABELS.index(y) for _, y in rows]


def _teacher(model_dir: Path, cache: Path | None = None, **cfg: Any) -> LLMTeacher:
    return LLMTeacher.from_config(LABELS, LLMTeacherConfig(model=str(model_dir), **cfg), cache)


def _nll(probs: np.ndarray, labels: list[int]) -> float:
    return float(-np.log(probs[np.arange(len(labels)), labels]).mean())


@pytest.mark.parametrize("verbalizers", [None, {"pos": "very good", "neg": "bad"}])
def test_prefix_cache_equals_full_prompt(tiny_llm_dir: Path, verbalizers: Any) -> None:
    texts, labels = _data(20)
    probs = {}
    for cached in (True, False):
        t = _teacher(
            tiny_llm_dir, shots=2, verbalizers=verbalizers, prefix_cache=cached, batch_size=3
        )
        t.fit(texts[:8], labels[:8], seed=1)
        probs[cached] = t.predict_proba(texts[8:])
        assert probs[cached].shape == (12, 2)
        np.testing.assert_allclose(probs[cached].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs[True], probs[False], atol=1e-5)
    # the two paths really differ in what they run, yet not in what they return
    assert not np.allclose(probs[True], 0.5, atol=1e-3)


def test_kv_cache_compat_across_transformers_versions(tiny_llm_dir: Path) -> None:
    """The prefix cache is a `Cache` object passed by the name this transformers takes."""
    import transformers
    from transformers import DynamicCache

    class Old(torch.nn.Module):  # a 4.x forward
        def forward(self, input_ids: Any = None, past_key_values: Any = None) -> None: ...

    class New(torch.nn.Module):  # a 5.x forward
        def forward(self, input_ids: Any = None, cache: Any = None) -> None: ...

    assert kv_cache_argument(Old()) == "past_key_values" and kv_cache_argument(New()) == "cache"
    scorer = _teacher(tiny_llm_dir).scorer
    assert isinstance(scorer, TransformersScorer)
    decoder = scorer.model.get_decoder()
    new_api = int(transformers.__version__.split(".")[0]) >= 5
    assert kv_cache_argument(decoder) == ("cache" if new_api else "past_key_values")
    # a legacy tuple of (key, value) per layer, as some 4.x models return, becomes a Cache
    k = torch.zeros(1, 2, 3, 4)
    legacy = type("Out", (), {"past_key_values": ((k, k), (k, k))})()
    cache = kv_cache_of(legacy)
    assert isinstance(cache, DynamicCache) and cache.get_seq_length() == 3
    with torch.inference_mode():
        out = scorer.model(input_ids=torch.tensor([[1, 5, 6]]), use_cache=True)
    assert kv_cache_of(out).get_seq_length() == 3


def test_scores_are_summed_label_token_logprobs(tiny_llm_dir: Path) -> None:
    """One text, scored by hand with a plain forward over the whole prompt."""
    t = _teacher(tiny_llm_dir, verbalizers={"pos": "very good", "neg": "bad"}, batch_size=1)
    text = "the film was great"
    got = t.raw_scores([text])[0]
    scorer = t.scorer
    assert isinstance(scorer, TransformersScorer)
    p = t.prompt
    prefix = scorer.ids(p.prefix(), special=True)
    query = scorer.ids(p.query(text))
    for c, expected_tokens in enumerate([["very", "good"], ["bad"]]):
        cont = scorer.ids(p.continuation(c))
        assert scorer.tokenizer.convert_ids_to_tokens(cont) == expected_tokens
        ids = torch.tensor([prefix + query + cont])
        with torch.no_grad():
            logp = torch.log_softmax(scorer.model(ids).logits[0].float(), -1)
        start = len(prefix) + len(query)
        want = sum(float(logp[start + j - 1, tok]) for j, tok in enumerate(cont))
        assert got[c] == pytest.approx(want, abs=1e-4)


def test_batching_and_order_do_not_change_scores(tiny_llm_dir: Path) -> None:
    texts, _ = _data(10)
    a = _teacher(tiny_llm_dir, batch_size=1).raw_scores(texts)
    b = _teacher(tiny_llm_dir, batch_size=7).raw_scores(texts[::-1])[::-1]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_score_cache_is_shared_by_calibrations(tiny_llm_dir: Path, tmp_path: Path) -> None:
    texts, labels = _data(30)
    first = _teacher(tiny_llm_dir, tmp_path, calibration="none")
    first.fit(texts[:8], labels[:8])
    raw = first.predict_proba(texts)
    second = _teacher(tiny_llm_dir, tmp_path, calibration="contextual")
    calls: list[int] = []
    score = second.scorer.score
    second.scorer.score = lambda p, q, c: calls.append(len(q)) or score(p, q, c)  # type: ignore[method-assign]
    second.fit(texts[:8], labels[:8])
    assert calls == [3]  # only the content-free inputs were new
    calibrated = second.predict_proba(texts)
    assert calls == [3]
    assert first.prompt_fingerprint == second.prompt_fingerprint
    assert first.fingerprint != second.fingerprint
    assert not np.allclose(raw, calibrated)


def test_contextual_calibration_flattens_content_free_input(tiny_llm_dir: Path) -> None:
    # A random tiny LM is biased; bias it more through the label rows of the tied embeddings.
    t = _teacher(tiny_llm_dir, calibration="contextual", content_free=["N/A"])
    assert isinstance(t.scorer, TransformersScorer)
    emb = t.scorer.model.get_output_embeddings().weight
    pos_id = t.scorer.ids(" pos")[0]
    with torch.no_grad():
        emb[pos_id] *= 4.0
    raw = t.predict_proba(["N/A"])[0]
    assert abs(raw[0] - 0.5) > 0.05
    t.fit(*_data(8))
    np.testing.assert_allclose(t.predict_proba(["N/A"])[0], [0.5, 0.5], atol=1e-4)
    # several content-free inputs: their mean becomes uniform
    cf = np.array([[2.0, 0.0], [1.0, 0.5]])
    p = np.exp(cf) / np.exp(cf).sum(1, keepdims=True)
    z = np.log(p) + contextual_bias(cf)
    calibrated = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert abs(calibrated.mean(0)[0] - 0.5) < abs(p.mean(0)[0] - 0.5)


def test_temperature_fit_lowers_gold_nll() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    # overconfident and biased towards class 2: informative but badly scaled
    scores = 8.0 * (np.eye(3)[y] + rng.normal(0, 0.7, (60, 3))) + np.array([0.0, 0.0, 3.0])
    t, b = fit_temperature_bias(scores, y)
    before = _nll(np.exp(scores - np.log(np.exp(scores).sum(1, keepdims=True))), list(y))
    z = scores / t + b
    after = _nll(np.exp(z - np.log(np.exp(z).sum(1, keepdims=True))), list(y))
    assert t > 1.5 and after < before - 0.2
    assert b[2] < b[0] and b[2] < b[1]  # the bias towards class 2 is taken back


def test_temperature_calibration_on_the_teacher(tiny_llm_dir: Path) -> None:
    texts, labels = _data(40)
    raw = _teacher(tiny_llm_dir)
    raw.fit(texts, labels)
    cal = _teacher(tiny_llm_dir, calibration="temperature", shots=1)
    info = cal.fit(texts, labels)
    assert info["calibration_examples"] == 38  # the 2 shots are not calibrated on
    gold = [t for t in texts if t not in {s for s, _ in cal.prompt.shots}]
    y = [labels[texts.index(t)] for t in gold]
    uncal = LLMTeacher(cal.scorer, LABELS, cal.cfg)
    uncal.prompt = cal.prompt
    assert _nll(cal.predict_proba(gold), y) <= _nll(uncal.predict_proba(gold), y) + 1e-6
    assert cal.fit_info["temperature"] > 0


def test_shots_are_balanced_and_in_the_prompt(tiny_llm_dir: Path) -> None:
    texts, labels = _data(20)
    shots = pick_shots(texts, labels, 2, 2, seed=0)
    assert [y for _, y in shots] == [0, 1, 0, 1]
    assert pick_shots(texts, labels, 2, 2, seed=0) == shots
    t = _teacher(tiny_llm_dir, shots=2)
    t.fit(texts, labels, seed=0)
    prefix = t.prompt.prefix()
    assert all(s in prefix for s, _ in shots) and prefix.count("Label: pos") == 2
    zero = _teacher(tiny_llm_dir)
    zero.fit(texts, labels)
    assert zero.fingerprint != t.fingerprint


def test_save_load_roundtrip(tiny_llm_dir: Path, tmp_path: Path) -> None:
    texts, labels = _data(24)
    t = _teacher(tiny_llm_dir, shots=1, calibration="temperature")
    t.fit(texts, labels, seed=3)
    t.save(tmp_path)
    back = LLMTeacher.load(tmp_path)
    assert back.fingerprint == t.fingerprint
    np.testing.assert_allclose(back.predict_proba(texts), t.predict_proba(texts), atol=1e-6)
    other = build_tiny_lm(tmp_path / "other", seed=1)
    with pytest.raises(LLMTeacherError, match="differs"):
        LLMTeacher.load(tmp_path, scorer=TransformersScorer.from_pretrained(str(other)))


def test_mc_samples(tiny_llm_dir: Path, tmp_path: Path) -> None:
    texts, labels = _data(6)
    t = _teacher(tiny_llm_dir)
    s = t.predict_proba_samples(texts, 4)
    assert s.shape == (4, 6, 2)
    np.testing.assert_allclose(s, np.broadcast_to(t.predict_proba(texts), s.shape), atol=1e-6)
    drop = _teacher(build_tiny_lm(tmp_path / "d"), mc_dropout=0.3)
    samples = drop.predict_proba_samples(texts, 4, seed=0)
    assert samples.std(0).max() > 1e-4
    np.testing.assert_allclose(samples, drop.predict_proba_samples(texts, 4, seed=0))
    assert not drop.scorer.model.training  # dropout is off again afterwards


def test_bad_config_and_input(tiny_llm_dir: Path) -> None:
    with pytest.raises(ValueError, match="text"):
        LLMTeacherConfig(template="no placeholder")
    with pytest.raises(LLMTeacherError, match="not in"):
        _teacher(tiny_llm_dir, verbalizers={"maybe": "x"})
    with pytest.raises(LLMTeacherError, match="share a word"):
        _teacher(tiny_llm_dir, verbalizers={"pos": "good", "neg": "good"})
    t = _teacher(tiny_llm_dir)
    with pytest.raises(LLMTeacherError, match="labels"):
        t.fit(["a"], [5])


# --------------------------------------------------------------------------- HTTP backend


class FakeServer:
    """Scripted OpenAI-compatible answers; records every request."""

    def __init__(self, logprobs: dict[str, float] | None, chat: bool = False) -> None:
        self.logprobs = logprobs
        self.chat = chat
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(
        self, url: str, headers: dict[str, str], body: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        self.requests.append((url, body))
        if self.logprobs is None:
            return {"choices": [{"text": "", "logprobs": None}]}
        if self.chat:
            top = [{"token": f" {w}", "logprob": v} for w, v in self.logprobs.items()]
            return {
                "choices": [
                    {
                        "message": {"content": "x"},
                        "logprobs": {
                            "content": [{"token": "x", "logprob": -0.1, "top_logprobs": top}]
                        },
                    }
                ]
            }
        prompt = body["prompt"]
        word = prompt.rsplit(" ", 1)[1]
        cut = len(prompt) - len(word) - 1
        return {
            "choices": [
                {
                    "text": prompt,
                    "logprobs": {
                        "tokens": [prompt[:cut], " " + word],
                        "token_logprobs": [None, self.logprobs[word]],
                        "text_offset": [0, cut],
                    },
                }
            ]
        }


def test_openai_completions_echo() -> None:
    server = FakeServer({"pos": math.log(0.6), "neg": math.log(0.2)})
    cfg = LLMTeacherConfig(backend="openai", model="m", base_url="http://x/v1")
    t = LLMTeacher.from_config(LABELS, cfg, transport=server)
    probs = t.predict_proba(["great film"])
    np.testing.assert_allclose(probs[0], [0.75, 0.25], atol=1e-6)
    url, body = server.requests[0]
    assert url == "http://x/v1/completions" and body["echo"] and body["max_tokens"] == 0
    assert len(server.requests) == 2  # one per label


def test_openai_chat_top_logprobs() -> None:
    server = FakeServer({"pos": math.log(0.5), "neg": math.log(0.3)}, chat=True)
    cfg = LLMTeacherConfig(backend="openai", endpoint="chat", model="m", base_url="http://x/v1")
    t = LLMTeacher.from_config(LABELS, cfg, transport=server)
    np.testing.assert_allclose(t.predict_proba(["a"])[0], [0.625, 0.375], atol=1e-6)
    assert server.requests[0][0] == "http://x/v1/chat/completions"
    assert isinstance(t.scorer, OpenAIScorer) and t.num_params() == 0


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_no_logprobs_is_a_clear_error(endpoint: str) -> None:
    cfg = LLMTeacherConfig(backend="openai", endpoint=endpoint, model="m", base_url="http://x/v1")
    t = LLMTeacher.from_config(LABELS, cfg, transport=FakeServer(None))
    with pytest.raises(LLMTeacherError) as e:
        t.predict_proba(["a text"])
    msg = str(e.value)
    assert (
        f"http://x/v1/{'completions' if endpoint == 'completions' else 'chat/completions'}" in msg
    )
    assert "no log-probabilities" in msg and "'m'" in msg and "logprobs" in msg


@pytest.mark.integration
@pytest.mark.slow  # loads the 135M model: run with `pytest -m integration`
def test_smollm2_zero_shot_beats_chance_after_calibration() -> None:
    """The real packaged SmolLM2 on the toy reviews (slow: loads a 135M model)."""
    cfg = LLMTeacherConfig(
        instruction="Is each movie review positive or negative?",
        template="Review: {text}\nSentiment:",
        verbalizers={"pos": "positive", "neg": "negative"},
        calibration="contextual",
    )
    t = LLMTeacher.from_config(LABELS, cfg)
    texts, labels = _data(40)
    t.fit(texts[:8], labels[:8])
    acc = (t.predict_proba(texts[8:]).argmax(1) == np.array(labels[8:])).mean()
    assert acc >= 0.7
