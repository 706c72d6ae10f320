"""Question / answer / rationale data: the built-in `gsm_symbolic` generator and JSONL files.

Why a generator: `reasoning-gym` makes GSM8K-style word problems offline from seeded templates,
each with a step-by-step solution and a scorer, so a benchmark can draw as many fresh items as
it needs. Item `i` of a reasoning-gym dataset is drawn from `Random(seed + i)`, so two datasets
whose seeds are close share items; the held-out set therefore uses a seed far from any training
seed, and training drops every question that also appears in the held-out set (templates are
few, so an exact repeat can happen by chance). `gsm_split` asserts the two are disjoint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinystudent.errors import AssetMissingError, DataError

REASONING_GYM_PIP = "pip install 'tinystudent[rationale]'  (or: pip install reasoning-gym==0.1.25)"
#: Seed offset of the held-out set: item i uses Random(seed + i), so training (seed s, a few
#: thousand items) and testing (seed s + 10**9) never draw from the same random stream.
TEST_SEED_OFFSET = 1_000_000_000
_FINAL_LINE = re.compile(r"\n?\s*####\s*(.*?)\s*$", re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class Example:
    """One problem. `rationale` is the worked solution without its final-answer line, if known;
    `meta` is what a generator knows about it (reasoning-gym metadata: a solver writes steps
    from it, a scorer may need it)."""

    id: str
    question: str
    answer: str
    rationale: str | None = None
    meta: dict[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "rationale": self.rationale,
        }
        if self.meta is not None:
            out["meta"] = self.meta
        return out


#: (predicted answer text, example) -> correct? A dataset's own notion of exact match.
Scorer = Callable[[str, Example], bool]


def strip_final_answer(solution: str) -> str:
    """A GSM-style solution without its trailing `#### <answer>` line: the rationale alone."""
    return _FINAL_LINE.sub("", solution).rstrip()


def number_match(prediction: str, example: Example) -> bool:
    """Exact match for free-form answers: numerically when the gold answer is a number
    (first number in the prediction, as gsm_symbolic scores), else normalised text equality."""
    gold = example.answer.strip()
    try:
        gold_value = float(gold.replace(",", ""))
    except ValueError:
        return " ".join(prediction.lower().split()) == " ".join(gold.lower().split())
    m = _NUMBER.search(prediction)
    if m is None:
        return False
    try:
        return float(m.group(0).replace(",", "")) == gold_value
    except ValueError:
        return False


# --------------------------------------------------------------------------- gsm_symbolic


def _gym() -> Any:
    try:
        import reasoning_gym
    except ImportError as e:
        raise AssetMissingError(
            f"the gsm_symbolic data needs reasoning-gym: {REASONING_GYM_PIP}"
        ) from e
    return reasoning_gym


def gsm_items(size: int, seed: int, prefix: str) -> list[Example]:
    """`size` generated problems from `seed`; ids are `<prefix>-<index>`."""
    if size <= 0:
        return []
    ds = _gym().create_dataset("gsm_symbolic", size=size, seed=seed)
    out = []
    for i in range(size):
        item = ds[i]
        out.append(
            Example(
                id=f"{prefix}-{i}",
                question=str(item["question"]),
                answer=str(item["answer"]).strip(),
                rationale=strip_final_answer(str(item["metadata"]["answer_cot"])),
            )
        )
    return out


def gsm_scorer() -> Scorer:
    """gsm_symbolic's own scorer: the first number of the prediction must equal the answer."""
    ds = _gym().create_dataset("gsm_symbolic", size=1, seed=0)

    def score(prediction: str, example: Example) -> bool:
        return float(ds.score_answer(prediction, {"answer": example.answer})) == 1.0

    return score


def gsm_split(num_train: int, num_test: int, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Seeded training items and a fixed held-out set that shares no question with them."""
    test = gsm_items(num_test, seed + TEST_SEED_OFFSET, "test")
    held_out = {e.question for e in test}
    # Draw a little extra so dropping the (rare) repeats still leaves `num_train` items.
    pool = gsm_items(num_train + num_train // 10 + 10, seed, "train")
    train = [e for e in pool if e.question not in held_out][:num_train]
    assert not held_out & {e.question for e in train}, "held-out questions leaked into training"
    return train, test


# --------------------------------------------------------------------------- JSONL files


def load_jsonl(path: str | Path, prefix: str | None = None) -> list[Example]:
    """Rows with `question` and `answer` (strings or numbers) and an optional `rationale`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    prefix = prefix or path.stem
    out: list[Example] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in ("question", "answer") if row.get(k) in (None, "")]
            if missing:
                raise DataError(f"{path}:{n}: missing column {', '.join(missing)}")
            rationale = row.get("rationale")
            meta = row.get("meta")
            out.append(
                Example(
                    id=str(row.get("id", f"{prefix}-{len(out)}")),
                    question=str(row["question"]).strip(),
                    answer=str(row["answer"]).strip(),
                    rationale=str(rationale).strip() if rationale not in (None, "") else None,
                    meta=meta if isinstance(meta, dict) else None,
                )
            )
    if not out:
        raise DataError(f"{path}: no rows (expected JSON lines with question and answer)")
    return out


def save_jsonl(path: str | Path, examples: Sequence[Example]) -> None:
    from tinystudent.io import write_text

    write_text(path, "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in examples))


def drop_overlap(train: Sequence[Example], test: Sequence[Example]) -> list[Example]:
    """Training rows whose question is not a held-out question (exact, whitespace-normalised)."""
    held_out = {" ".join(e.question.split()) for e in test}
    return [e for e in train if " ".join(e.question.split()) not in held_out]
