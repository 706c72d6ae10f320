"""PINTO's rationalizing module: a FROZEN causal LM, prompted with a few demonstrations, writes
a rationale for each question; a resumable stage of the run directory.

The prompt is `num_shots` blocks `Question: q\\nRationale: r\\nAnswer: a` (training questions
with the recipe's rationale source's rationales, never the question being asked), then
`Question: q\\nRationale:`. Decoding is greedy (deterministic), batched with left padding and
the KV cache, and a row stops at `\\nAnswer:`, `\\nRationale:`, `\\nQuestion:` or a blank
line: a base LM continuing a few-shot prompt goes on to answer, to loop, or to invent the next
question. The rationale is the text before the stop.

Cost, per question: the tokens it generated (the stop string's included, the few-shot prompt
not) and the wall seconds of the generate call it was part of (`BATCHES_PER_SAVE` batches),
divided by the questions in it (tokenisation and decoding included; loading the model once is
not). The stage writes `pinto_rationales.partial.json` after every such call, so a killed run
resumes where it stopped, and `pinto_rationales.json` when done (both atomically; the key is
in `stages.json`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinystudent.devices import resolve_device
from tinystudent.io import read_json, write_json
from tinystudent.rationale.data import Example
from tinystudent.rationale.evaluate import generate_greedy
from tinystudent.rationale.pinto import RationalizerSpec
from tinystudent.rationale.student import load_student
from tinystudent.stages import Stages

STAGE = "pinto_rationales"
STOP_STRINGS = ("\nAnswer:", "\n\n", "\nQuestion:", "\nRationale:")
#: Batches generated between two writes of the partial file.
BATCHES_PER_SAVE = 4


def _q(text: str) -> str:
    return " ".join(text.split())


def demonstration(ex: Example) -> str:
    return f"Question: {_q(ex.question)}\nRationale: {(ex.rationale or '').strip()}\n" + (
        f"Answer: {ex.answer}\n\n"
    )


def fewshot_prompt(question: str, demos: Sequence[Example], num_shots: int) -> str:
    """The rationalizer's prompt for `question`: the first `num_shots` demonstrations that are
    not this very question, then the question and the `Rationale:` cue."""
    shots = [d for d in demos if _q(d.question) != _q(question)][:num_shots]
    return "".join(demonstration(d) for d in shots) + f"Question: {_q(question)}\nRationale:"


def cut_rationale(text: str) -> str:
    """The generated text before the first stop string: the rationale alone."""
    end = min((i for i in (text.find(s) for s in STOP_STRINGS) if i >= 0), default=len(text))
    return text[:end].strip()


def generate_rationales(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    spec: RationalizerSpec,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Per prompt: `text` (the rationale), `new_tokens`, `prompt_tokens` and `seconds`."""
    t0 = time.perf_counter()
    texts, counts = generate_greedy(
        model,
        tokenizer,
        prompts,
        spec.max_new_tokens,
        spec.batch_size,
        progress,
        desc="rationalize",
        stop_strings=STOP_STRINGS,
    )
    seconds = (time.perf_counter() - t0) / max(1, len(prompts))
    return [
        {
            "text": cut_rationale(text),
            "new_tokens": n,
            "prompt_tokens": len(tokenizer.encode(p, add_special_tokens=False)),
            "seconds": seconds,
        }
        for p, text, n in zip(prompts, texts, counts)
    ]


def rationalize_stage(
    stages: Stages,
    key: str,
    questions: Sequence[tuple[str, str]],
    demos: Sequence[Example],
    spec: RationalizerSpec,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Rationales for `questions` (`(uid, question)` pairs), by uid: read back when the stage
    ran with `key`, else generated (resuming from the partial file of the same key)."""
    final = stages.root / f"{STAGE}.json"
    partial = stages.root / f"{STAGE}.partial.json"
    if stages.is_done(STAGE, key, final):
        stages.mark(STAGE, key, ran=False)
        return dict(read_json(final)["rationales"])
    done: dict[str, dict[str, Any]] = {}
    if partial.is_file() and read_json(partial).get("key") == key:
        done = dict(read_json(partial)["rationales"])
    todo = [(uid, q) for uid, q in questions if uid not in done]
    if todo:
        _generate_into(done, todo, demos, spec, device, progress, partial, key)
    out = {uid: done[uid] for uid, _ in questions}
    write_json(
        final,
        {
            "rationalizer": spec.model_dump(mode="json"),
            "demonstrations": [d.to_json() for d in demos[: spec.num_shots + 1]],
            "rationales": out,
        },
    )
    partial.unlink(missing_ok=True)
    stages.mark(STAGE, key, ran=True)
    return out


def _generate_into(
    done: dict[str, dict[str, Any]],
    todo: Sequence[tuple[str, str]],
    demos: Sequence[Example],
    spec: RationalizerSpec,
    device: str,
    progress: bool,
    partial: Path,
    key: str,
) -> None:
    model, tok = load_student(spec.model)  # the whole model: frozen, never trained
    model.to(resolve_device(device))
    model.requires_grad_(False)
    chunk = spec.batch_size * BATCHES_PER_SAVE
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        prompts = [fewshot_prompt(q, demos, spec.num_shots) for _, q in part]
        for (uid, _), row in zip(part, generate_rationales(model, tok, prompts, spec, progress)):
            done[uid] = row
        write_json(partial, {"key": key, "rationales": done})
