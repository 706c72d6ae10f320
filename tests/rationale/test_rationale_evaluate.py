"""Batched greedy generation with left padding gives what one-by-one generation gives."""

from __future__ import annotations

from pathlib import Path

from tinystudent.rationale.data import Example, number_match
from tinystudent.rationale.evaluate import evaluate_student, generate_greedy
from tinystudent.rationale.format import Mode
from tinystudent.rationale.student import load_student


def test_batched_left_padded_generation_matches_one_by_one(tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir))
    prompts = ["Question: 1+1?\nAnswer:", "Q?", "Question: a much longer one, 7+8?\nAnswer:"]
    batched, counts = generate_greedy(model, tok, prompts, max_new_tokens=6, batch_size=3)
    single = [generate_greedy(model, tok, [p], 6, 1)[0][0] for p in prompts]
    assert batched == single
    assert all(1 <= n <= 6 for n in counts)


def test_evaluation_scores_with_the_scorer_in_input_order(tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir))
    exs = [Example("a", "2+2?", "4"), Example("b", "a longer question, 3+3?", "6")]
    always_right = evaluate_student(model, tok, exs, Mode.answer, lambda p, e: True, 4, 2)
    assert always_right.accuracy == 1.0 and always_right.total == 2
    assert [p["id"] for p in always_right.predictions] == ["a", "b"]
    assert always_right.mean_new_tokens <= 4 and always_right.seconds_per_answer > 0
    random_model = evaluate_student(model, tok, exs, Mode.answer, number_match, 4, 2)
    assert random_model.correct == sum(p["correct"] for p in random_model.predictions)
