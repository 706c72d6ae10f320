"""The strings the student sees in each mode, and how answers are read back."""

from __future__ import annotations

import pytest

from tinystudent.rationale.data import Example
from tinystudent.rationale.format import (
    Mode,
    Row,
    Task,
    extract_answer,
    inference_prompt,
    rows,
)

EX = Example("e", "Tom has 2 cats.\n  He gets 3 more. How many?", "5", "2+3=5.")


def test_answer_mode_is_the_answer_only():
    assert rows(EX, Mode.answer) == [
        Row("Question: Tom has 2 cats. He gets 3 more. How many?\nAnswer:", " 5", Task.label)
    ]


def test_cot_mode_is_rationale_then_answer():
    (row,) = rows(EX, Mode.cot)
    assert row.prompt == inference_prompt(EX.question, Mode.cot)
    assert row.target == " 2+3=5.\n#### 5"


def test_multitask_has_two_prefixed_tasks_on_the_same_input():
    label, rationale = rows(EX, Mode.multitask)
    question = "Question: Tom has 2 cats. He gets 3 more. How many?\nAnswer:"
    assert label == Row(f"[label] {question}", " 5", Task.label)
    assert rationale == Row(f"[rationale] {question}", " 2+3=5.", Task.rationale)
    # Inference runs the label task only.
    assert inference_prompt(EX.question, Mode.multitask) == label.prompt


@pytest.mark.parametrize("mode", [Mode.cot, Mode.multitask])
def test_rationale_modes_need_a_rationale(mode: Mode):
    with pytest.raises(ValueError, match="no rationale"):
        rows(Example("x", "q", "1"), mode)


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("12", Mode.answer, "12"),
        (" 12\nQuestion: 7 more", Mode.answer, "12"),
        ("\n\n 3 apples", Mode.multitask, "3 apples"),
        ("2+3=5\n#### 5\nQuestion: 9", Mode.cot, "5"),
        ("a #### 1 then #### 7", Mode.cot, "7"),
        ("2+3=5, so 5+1=6", Mode.cot, "6"),
        ("no number", Mode.cot, "no number"),
        ("", Mode.answer, ""),
    ],
)
def test_extract_answer(text: str, mode: Mode, expected: str):
    assert extract_answer(text, mode) == expected
