"""Score a student on held-out questions with the dataset's own scorer, and time it.

Greedy decoding (deterministic, the usual protocol for exact-match accuracy), in batches with
left padding so every row continues its own prompt. Rows are sorted by prompt length before
batching so little compute goes to padding; results come back in the input order. Reported:
exact-match accuracy, mean tokens generated per answer (EOS included, padding not), and wall
seconds per answer (tokenisation and decoding included).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinystudent.io import write_text
from tinystudent.rationale.data import Example, Scorer
from tinystudent.rationale.format import Mode, extract_answer, student_prompt


@dataclass
class EvalResult:
    accuracy: float
    correct: int
    total: int
    mean_new_tokens: float
    seconds_per_answer: float
    max_new_tokens: int
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "mean_new_tokens": self.mean_new_tokens,
            "seconds_per_answer": self.seconds_per_answer,
            "max_new_tokens": self.max_new_tokens,
        }


def save_predictions(path: Path, res: EvalResult) -> None:
    """`res`'s predictions as JSON lines (one per test question), written atomically."""
    write_text(path, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in res.predictions))


def generate_greedy(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "generate",
    stop_strings: Sequence[str] = (),
) -> tuple[list[str], list[int]]:
    """Greedy continuations of `prompts` and the number of tokens each one generated.

    A row also stops once it has written one of `stop_strings` (kept in its text): a base LM
    continuing a few-shot prompt never writes EOS, and would otherwise run to the limit."""
    import torch
    from tqdm.auto import tqdm

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token")
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    texts: list[str] = [""] * len(prompts)
    counts: list[int] = [0] * len(prompts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(
            range(0, len(order), batch_size), desc=desc, disable=not progress, unit="batch"
        ):
            chunk = order[start : start + batch_size]
            rows = [encoded[i] for i in chunk]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
            mask = torch.tensor(
                [[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device
            )
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_new_tokens,
                "do_sample": False,
                "pad_token_id": int(pad),
            }
            if eos is not None:
                kwargs["eos_token_id"] = int(eos)
            if stop_strings:
                kwargs["stop_strings"] = list(stop_strings)
                kwargs["tokenizer"] = tokenizer
            with torch.inference_mode():
                out = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
            for i, row in zip(chunk, out[:, width:].tolist()):
                n = len(row)
                if eos is not None and eos in row:
                    n = row.index(eos) + 1  # what follows EOS is padding, not generation
                elif stop_strings:  # a row stopped early is padded to the longest one
                    while n and row[n - 1] == pad:
                        n -= 1
                counts[i] = n
                texts[i] = tokenizer.decode(row[:n], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return texts, counts


def evaluate_student(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    mode: Mode,
    scorer: Scorer,
    max_new_tokens: int,
    batch_size: int = 16,
    progress: bool = False,
    prompts: Sequence[str] | None = None,
) -> EvalResult:
    """Exact-match accuracy of the label task (the only one inference runs) on `examples`;
    `prompts` (one per example) replace the mode's own, e.g. icl's few-shot prompts."""
    if not examples:
        raise ValueError("evaluation needs at least one held-out example")
    if prompts is None:
        prompts = [student_prompt(e, mode) for e in examples]
    elif len(prompts) != len(examples):
        raise ValueError(f"{len(prompts)} prompts for {len(examples)} examples")
    t0 = time.perf_counter()
    texts, counts = generate_greedy(
        model,
        tokenizer,
        prompts,
        max_new_tokens,
        batch_size,
        progress,
        desc=f"evaluate {mode.value}",
    )
    seconds = time.perf_counter() - t0
    preds = []
    correct = 0
    for ex, text, n in zip(examples, texts, counts):
        answer = extract_answer(text, mode)
        ok = bool(scorer(answer, ex))
        correct += ok
        preds.append(
            {
                "id": ex.id,
                "gold": ex.answer,
                "predicted": answer,
                "correct": ok,
                "new_tokens": n,
                "output": text,
            }
        )
    return EvalResult(
        accuracy=correct / len(examples),
        correct=correct,
        total=len(examples),
        mean_new_tokens=sum(counts) / len(counts),
        seconds_per_answer=seconds / len(examples),
        max_new_tokens=max_new_tokens,
        predictions=preds,
    )
