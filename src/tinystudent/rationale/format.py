"""What the student reads and writes in each training mode; one place, so training and
inference can never disagree about a prompt.

- `answer`: `Question: q\\nAnswer:` -> ` a` (the baseline: no rationale at all).
- `cot` (Fine-tune-CoT, Ho et al. 2023): the same prompt -> ` rationale\\n#### a`; at inference
  the student writes its reasoning first and the answer is read after the last `####`.
- `icl` (in-context-learning distillation, Huang et al. 2022): k demonstrations
  `Question: qi\nAnswer: ai` before the answer-mode prompt (`rationale/icl.py` builds them);
  with no demonstration it is the answer prompt.
- `multitask` (distilling step-by-step, Hsieh et al. 2023): one input, two tasks told apart by a
  prefix: `[label] Question: ...` -> ` a` and `[rationale] Question: ...` -> ` rationale`.
  The rationale is a training signal only; inference runs the `[label]` task, so it costs as
  little as the answer-only student.
- `pinto` (Wang et al. 2023): `Question: q\nRationale: r\nAnswer:` -> ` a`, where `r` is written
  by a frozen, few-shot prompted LM for training and test questions alike
  (`tinystudent.rationale.pinto`).
- `knife` (KNIFE, Chan et al. 2022; `knife.py`): the student's rows are the answer-only rows;
  the rationale reaches it only through a teacher that read it (matched hidden states).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from tinystudent.rationale.data import Example

ANSWER_MARKER = "####"
LABEL_PREFIX = "[label]"
RATIONALE_PREFIX = "[rationale]"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class Mode(str, Enum):
    answer = "answer"
    cot = "cot"
    multitask = "multitask"
    pinto = "pinto"
    knife = "knife"
    icl = "icl"  # few-shot prompts (rationale/icl.py); the query's row is answer-shaped


class Task(str, Enum):
    """Which loss a training row feeds (only multitask has rationale rows; only pinto has
    counterfactual rows, whose rationale is perturbed)."""

    label = "label"
    rationale = "rationale"
    counterfactual = "counterfactual"


@dataclass(frozen=True)
class Row:
    """One training sequence: the loss is on `target` only, never on `prompt`."""

    prompt: str
    target: str
    task: Task = Task.label


def prompt(question: str, mode: Mode, task: Task = Task.label) -> str:
    text = f"Question: {' '.join(question.split())}\nAnswer:"
    if mode is Mode.multitask:
        return f"{LABEL_PREFIX if task is Task.label else RATIONALE_PREFIX} {text}"
    return text


def pinto_prompt(question: str, rationale: str) -> str:
    """The pinto student's input: the question, then the rationalizer's rationale."""
    r = rationale.strip()
    return f"Question: {' '.join(question.split())}\nRationale:{' ' + r if r else ''}\nAnswer:"


def rows(example: Example, mode: Mode) -> list[Row]:
    """The training rows of one example in `mode` (two for multitask, else one)."""
    answer = f" {example.answer}"
    if mode in (Mode.answer, Mode.knife, Mode.icl):
        return [Row(prompt(example.question, mode), answer)]
    if example.rationale is None:
        raise ValueError(f"example {example.id} has no rationale; mode {mode.value} needs one")
    if mode is Mode.pinto:
        return [Row(pinto_prompt(example.question, example.rationale), answer)]
    if mode is Mode.cot:
        target = f" {example.rationale}\n{ANSWER_MARKER} {example.answer}"
        return [Row(prompt(example.question, mode), target)]
    return [
        Row(prompt(example.question, mode, Task.label), answer, Task.label),
        Row(
            prompt(example.question, mode, Task.rationale), f" {example.rationale}", Task.rationale
        ),
    ]


def inference_prompt(question: str, mode: Mode) -> str:
    """What the student is asked at test time: the label task only, in every mode."""
    return prompt(question, mode, Task.label)


def student_prompt(example: Example, mode: Mode) -> str:
    """What the student reads for a held-out example: pinto reads the rationale the frozen
    rationalizer wrote for it (in `example.rationale`); every other mode the question only."""
    if mode is Mode.pinto:
        return pinto_prompt(example.question, example.rationale or "")
    return inference_prompt(example.question, mode)


def extract_answer(text: str, mode: Mode) -> str:
    """The final answer in a generation; scorers then read it their own way (gsm_symbolic: its
    first number). After the last `####` when there is one. Otherwise a `cot` student ran out
    of tokens mid-reasoning: its last number is the best guess. An answer-only student answers
    on its first line; what follows is run-on text, not the answer."""
    if ANSWER_MARKER in text:
        tail = text.rsplit(ANSWER_MARKER, 1)[1].strip()
        return tail.splitlines()[0].strip() if tail else ""
    if mode is Mode.cot:
        numbers = _NUMBER.findall(text)
        return numbers[-1] if numbers else text.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""
