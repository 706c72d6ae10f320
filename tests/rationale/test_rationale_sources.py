"""Rationale sources and the filter that keeps only rationales reaching the right answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tinystudent.generate.generator import OpenAIGenerator, Prompt
from tinystudent.rationale.data import Example, number_match
from tinystudent.rationale.sources import (
    DatasetRationales,
    GeneratorRationales,
    filter_rationales,
    split_solution,
)

QS = [Example("a", "2 plus 3?", "5"), Example("b", "4 times 2?", "8")]


class Scripted:
    """A Generator that answers from a script and records what it was asked."""

    name = "scripted"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.prompts: list[Prompt] = []

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
    ) -> list[str]:
        self.prompts.extend(prompts)
        return self.texts[: len(prompts)]


def test_split_solution():
    assert split_solution("2+3=5\n#### 5") == ("2+3=5", "5")
    assert split_solution("2+3 is 5") == ("2+3 is 5", "5")


def test_filter_keeps_correct_distinct_rationales_only():
    candidates = [
        ["2+3=5\n#### 5", "2+3=6\n#### 6", "2 + 3 = 5\n####5", "2+3=5\n#### 5", "#### 5"],
        ["4*2=9\n#### 9", "4 doubled is 8"],
    ]
    kept, stats = filter_rationales(QS, candidates, number_match)
    assert [(e.id, e.rationale) for e in kept] == [
        ("a#0", "2+3=5"),
        ("a#2", "2 + 3 = 5"),
        ("b#1", "4 doubled is 8"),
    ]
    assert all(e.answer == q.answer for e in kept for q in QS if e.question == q.question)
    assert stats.as_dict() == {
        "questions": 2,
        "candidates": 7,
        "kept": 3,
        "dropped_wrong_answer": 2,
        "dropped_empty": 1,
        "dropped_duplicate": 1,
        "questions_with_rationale": 2,
    }


def test_filter_checks_lengths():
    with pytest.raises(ValueError, match="candidate lists"):
        filter_rationales(QS, [["x"]], number_match)


def test_dataset_source_uses_carried_rationales():
    exs = [Example("a", "q", "5", "2+3=5"), Example("b", "q2", "1")]
    cands = DatasetRationales().candidates(exs, seed=0)
    assert cands == [["2+3=5\n#### 5"], []]
    kept, _ = filter_rationales(exs, cands, number_match)
    assert [e.rationale for e in kept] == ["2+3=5"]


def test_generator_source_samples_several_per_question():
    gen = Scripted(["2+3=5\n#### 5", "wrong\n#### 4", "4*2=8\n#### 8", "4+4=8\n#### 8"])
    source = GeneratorRationales(gen, num_samples=2, temperature=0.8)
    cands = source.candidates(QS, seed=1)
    assert cands == [gen.texts[:2], gen.texts[2:]]
    assert len(gen.prompts) == 4
    first = gen.prompts[0]
    assert isinstance(first, list) and "2 plus 3?" in first[0]["content"]
    assert "####" in first[0]["content"]
    kept, stats = filter_rationales(QS, cands, number_match)
    assert [e.rationale for e in kept] == ["2+3=5", "4*2=8", "4+4=8"]
    assert stats.wrong_answer == 1


def test_openai_endpoint_as_a_rationale_source():
    calls: list[dict[str, Any]] = []

    def transport(url: str, headers: dict[str, str], body: dict[str, Any], timeout: float):
        calls.append({"url": url, **body})
        answer = "2+3=5\n#### 5" if "2 plus 3" in body["messages"][0]["content"] else "#### 7"
        return {"choices": [{"message": {"content": answer}}]}

    gen = OpenAIGenerator("big-llm", base_url="http://teacher/v1", transport=transport)
    source = GeneratorRationales(gen, num_samples=3, temperature=0.7)
    kept, stats = filter_rationales(QS, source.candidates(QS, seed=10), number_match)
    assert len(calls) == 6 and calls[0]["url"] == "http://teacher/v1/chat/completions"
    assert sorted(c["seed"] for c in calls) == list(range(10, 16))  # a different seed per sample
    assert [e.id for e in kept] == ["a#0"]  # identical samples collapse to one
    assert stats.duplicate == 2 and stats.empty == 3


def test_generator_source_validates_its_settings():
    with pytest.raises(ValueError, match="num_samples"):
        GeneratorRationales(Scripted([]), num_samples=0)
    with pytest.raises(ValueError, match="question"):
        GeneratorRationales(Scripted([]), instruction="no placeholder")
