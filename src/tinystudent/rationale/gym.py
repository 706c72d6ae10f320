"""Any reasoning-gym task as rationale data: seeded train / held-out splits and its scorer.

Why reasoning-gym: it ships 100+ offline generators whose difficulty is set by options
(number of terms, digits, words...), each with a scorer, so a benchmark can pick a task where
the effect of rationales is visible at a CPU budget and draw as many fresh items as it needs.
Item `i` of a dataset is drawn from `Random(seed + i)`, so the held-out set uses a seed far
from any training seed, and training drops every question also held out (`gym_split`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tinystudent.errors import AssetMissingError, DataError
from tinystudent.rationale.data import REASONING_GYM_PIP, TEST_SEED_OFFSET, Example, Scorer


def _gym() -> Any:
    try:
        import reasoning_gym
    except ImportError as e:
        raise AssetMissingError(f"reasoning_gym data needs: {REASONING_GYM_PIP}") from e
    return reasoning_gym


def gym_dataset(task: str, options: Mapping[str, Any], size: int, seed: int) -> Any:
    """The reasoning-gym dataset `task` with its options; a bad name or option is one clear line."""
    gym = _gym()
    if task not in gym.factory.DATASETS:
        raise DataError(f"data.task {task!r} is not a reasoning-gym task")
    try:
        return gym.create_dataset(task, size=size, seed=seed, **dict(options))
    except (AssertionError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"data.task_options for {task!r}: {e}") from None


def _plain(value: Any) -> Any:
    """Metadata as JSON values (tuples -> lists), so it survives the rationale cache."""
    return json.loads(json.dumps(value, default=str))


def gym_items(
    task: str, options: Mapping[str, Any], size: int, seed: int, prefix: str
) -> list[Example]:
    """`size` problems from `seed`, ids `<prefix>-<index>`, with reasoning-gym's metadata."""
    if size <= 0:
        return []
    ds = gym_dataset(task, options, size, seed)
    out = []
    for i in range(size):
        item = ds[i]
        meta = _plain(item.get("metadata", {}))
        cot = meta.get("answer_cot") if isinstance(meta, dict) else None
        out.append(
            Example(
                id=f"{prefix}-{i}",
                question=str(item["question"]),
                answer=str(item["answer"]).strip(),
                rationale=str(cot).strip() if cot else None,
                meta=meta,
            )
        )
    return out


def gym_split(
    task: str, options: Mapping[str, Any], num_train: int, num_test: int, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """Seeded training items and a held-out set (seed + 10**9) that shares no question."""
    test = gym_items(task, options, num_test, seed + TEST_SEED_OFFSET, "test")
    held_out = {e.question for e in test}
    pool = gym_items(task, options, num_train + num_train // 5 + 10, seed, "train")
    train = [e for e in pool if e.question not in held_out][:num_train]
    if len(train) < num_train:
        raise DataError(
            f"{task}: only {len(train)} training questions differ from the held-out ones "
            f"({num_train} asked); the options allow too few distinct problems"
        )
    return train, test


def gym_scorer(task: str, options: Mapping[str, Any]) -> Scorer:
    """The task's own scorer: correct only when it gives full credit (1.0)."""
    ds = gym_dataset(task, options, 1, 0)

    def score(prediction: str, example: Example) -> bool:
        entry = {"answer": example.answer, "metadata": example.meta or {}}
        try:
            return float(ds.score_answer(prediction, entry)) == 1.0
        except Exception:  # a scorer that cannot parse a malformed answer: not correct
            return False

    return score
