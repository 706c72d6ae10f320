"""Where rationales come from, and which ones a student may learn from.

A source proposes candidate solutions (rationale + final answer) for each training question:
- `DatasetRationales`: the worked solutions a dataset already carries (gsm_symbolic does);
- `GeneratorRationales`: sampled from a teacher LM behind the `Generator` protocol, i.e. a
  local transformers causal LM or an OpenAI-compatible endpoint (`tinystudent.generate`).
  Several samples per question at temperature > 0 give diverse reasoning paths.
`filter_rationales` then keeps a candidate only when its final answer is correct by the dataset's
scorer: a rationale that reaches a wrong answer would teach the student wrong reasoning
(the filtering step of Fine-tune-CoT and distilling step-by-step).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tinystudent.generate.generator import Generator, Prompt
from tinystudent.rationale.data import Example, Scorer
from tinystudent.rationale.format import ANSWER_MARKER, Mode, extract_answer

log = logging.getLogger(__name__)

DEFAULT_INSTRUCTION = (
    "Solve the problem step by step, one short step per line. "
    f"End with a last line of the form '{ANSWER_MARKER} <answer>' holding only the final answer."
    "\n\nProblem: {question}"
)


class RationaleSource(Protocol):
    name: str

    def candidates(self, examples: Sequence[Example], seed: int) -> list[list[str]]:
        """Candidate solutions per example, each `rationale ... #### answer` (or free text)."""
        ...


class DatasetRationales:
    """The rationale each example carries (none for an example without one)."""

    name = "dataset"

    def candidates(self, examples: Sequence[Example], seed: int) -> list[list[str]]:
        return [
            [f"{e.rationale}\n{ANSWER_MARKER} {e.answer}"] if e.rationale else [] for e in examples
        ]


class GeneratorRationales:
    """`num_samples` sampled solutions per question from a teacher LM (chat prompt)."""

    def __init__(
        self,
        generator: Generator,
        num_samples: int = 4,
        temperature: float = 0.7,
        top_p: float = 0.95,
        max_new_tokens: int = 256,
        instruction: str = DEFAULT_INSTRUCTION,
    ) -> None:
        if num_samples < 1:
            raise ValueError("num_samples must be at least 1")
        if "{question}" not in instruction:
            raise ValueError("the rationale instruction must contain {question}")
        self.generator = generator
        self.name = f"generator:{generator.name}"
        self.num_samples = num_samples
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.instruction = instruction

    def messages(self, question: str) -> Prompt:
        return [{"role": "user", "content": self.instruction.format(question=question)}]

    def candidates(self, examples: Sequence[Example], seed: int) -> list[list[str]]:
        prompts = [self.messages(e.question) for e in examples for _ in range(self.num_samples)]
        outs = self.generator.generate(
            prompts, self.max_new_tokens, self.temperature, self.top_p, seed
        )
        k = self.num_samples
        return [list(outs[i * k : (i + 1) * k]) for i in range(len(examples))]


def split_solution(text: str) -> tuple[str, str]:
    """(rationale, final answer) of a candidate: the answer after the last `####`, else the last
    number of the text (whose rationale is then the whole text)."""
    text = text.strip()
    if ANSWER_MARKER in text:
        head, _ = text.rsplit(ANSWER_MARKER, 1)
        return head.strip(), extract_answer(text, Mode.cot)
    return text, extract_answer(text, Mode.cot)


@dataclass
class FilterStats:
    questions: int = 0
    candidates: int = 0
    kept: int = 0
    wrong_answer: int = 0
    empty: int = 0
    duplicate: int = 0
    questions_with_rationale: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "questions": self.questions,
            "candidates": self.candidates,
            "kept": self.kept,
            "dropped_wrong_answer": self.wrong_answer,
            "dropped_empty": self.empty,
            "dropped_duplicate": self.duplicate,
            "questions_with_rationale": self.questions_with_rationale,
        }


def filter_rationales(
    examples: Sequence[Example], candidates: Sequence[Sequence[str]], scorer: Scorer
) -> tuple[list[Example], FilterStats]:
    """One training example per kept (question, rationale): correct final answer, non-empty
    rationale, not a repeat of a rationale already kept for that question."""
    if len(candidates) != len(examples):
        raise ValueError(f"{len(candidates)} candidate lists for {len(examples)} examples")
    stats = FilterStats(questions=len(examples))
    kept: list[Example] = []
    for ex, cands in zip(examples, candidates):
        seen: set[str] = set()
        for j, text in enumerate(cands):
            stats.candidates += 1
            rationale, answer = split_solution(text)
            if not rationale:
                stats.empty += 1
                continue
            if not scorer(answer, ex):
                stats.wrong_answer += 1
                continue
            norm = " ".join(rationale.split())
            if norm in seen:
                stats.duplicate += 1
                continue
            seen.add(norm)
            kept.append(Example(f"{ex.id}#{j}", ex.question, ex.answer, rationale, ex.meta))
        stats.questions_with_rationale += bool(seen)
    stats.kept = len(kept)
    log.info("rationales: kept %d of %d candidates", stats.kept, stats.candidates)
    return kept, stats
