"""An LM teacher for icl distillation: prompted with the same few-shot prompt as the student,
its greedy answer tokens and their top-k logits are the student's soft targets.

Why top-k: the full distribution over a 49k vocabulary for every answer token of thousands
of prompts would be gigabytes; the top `TOP_K` logits hold nearly all of a confident LM's mass,
and KL on them (student normalised over the whole vocabulary) still pushes the rest down.
The answer is the first line of the continuation (a base LM prompted few-shot goes on with
the next `Question:`), as the student's own answer is read. The outputs are cached in the run
directory (`icl_teacher.jsonl`), a resumable stage: a rerun never prompts the teacher again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from tinystudent.checkpoint import fingerprint
from tinystudent.errors import DataError
from tinystudent.io import read_json, write_json, write_text
from tinystudent.rationale.icl import IclPrompt, SoftTarget
from tinystudent.stages import Stages

TOP_K = 32


def teacher_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 16,
    top_k: int = TOP_K,
) -> list[SoftTarget]:
    """Greedy first-line answers of `prompts` with the top-k logits of each answer token
    (batched, left-padded; an empty answer has no tokens)."""
    import torch

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    out: list[SoftTarget] = [SoftTarget([], [], [])] * len(prompts)
    device = next(model.parameters()).device
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        rows = [encoded[i] for i in chunk]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        with torch.inference_mode():
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=int(pad),
                eos_token_id=None if eos is None else int(eos),
                output_logits=True,
                return_dict_in_generate=True,
            )
        steps = torch.stack(gen.logits, dim=1).float()  # [B, steps, V]
        top = steps.topk(min(top_k, steps.shape[-1]), dim=-1)
        new = gen.sequences[:, width:].tolist()
        for b, i in enumerate(chunk):
            tokens: list[int] = []
            for tok_id in new[b]:
                if tok_id == eos or "\n" in tokenizer.decode([tok_id]):
                    break
                tokens.append(int(tok_id))
            n = len(tokens)
            out[i] = SoftTarget(
                tokens,
                top.indices[b, :n].tolist(),
                [[round(v, 4) for v in row] for row in top.values[b, :n].tolist()],
            )
    return out


def _same_vocab(teacher_tok: Any, student_tok: Any, name: str) -> None:
    if teacher_tok.get_vocab() != student_tok.get_vocab():
        raise DataError(
            f"train.icl.teacher {name!r} has another tokenizer than the student: soft targets "
            "need the same vocabulary (use a teacher of the student's family, or teacher: labels)"
        )


def cached_teacher(
    teacher: str,
    prompts: Sequence[IclPrompt],
    student_tok: Any,
    stages: Stages,
    max_new_tokens: int,
    batch_size: int,
    device: str,
) -> tuple[list[SoftTarget], dict[str, Any]]:
    """The teacher's answers to `prompts` (the `icl_teacher` stage: computed once, then read
    back from `icl_teacher.jsonl` while the teacher, the prompts and the caps are the same)."""
    from tinystudent.rationale.student import load_student

    cache, meta_path = stages.root / "icl_teacher.jsonl", stages.root / "icl_teacher.json"
    key = fingerprint(teacher, TOP_K, max_new_tokens, [p.text for p in prompts])
    if stages.is_done("icl_teacher", key, cache) and meta_path.is_file():
        stages.mark("icl_teacher", key, ran=False)
        rows = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
        targets = [SoftTarget(r["tokens"], r["top_ids"], r["top_logits"]) for r in rows]
        return targets, dict(read_json(meta_path))
    t0 = time.perf_counter()
    model, tok = load_student(teacher)
    _same_vocab(tok, student_tok, teacher)
    model.to(device)
    targets = teacher_answers(model, tok, [p.text for p in prompts], max_new_tokens, batch_size)
    texts = [tok.decode(t.tokens).strip() for t in targets]
    agree = sum(text == p.answer.strip() for text, p in zip(texts, prompts))
    meta = {
        "teacher": teacher,
        "prompts": len(prompts),
        "empty_answers": sum(not t.tokens for t in targets),
        "agrees_with_labels": agree / len(prompts) if prompts else 0.0,
        "top_k": TOP_K,
        "seconds": time.perf_counter() - t0,
    }
    lines = [
        json.dumps(
            {
                "id": p.id,
                "answer": text,
                **{k: getattr(t, k) for k in ("tokens", "top_ids", "top_logits")},
            }
        )
        + "\n"
        for p, t, text in zip(prompts, targets, texts)
    ]
    write_text(cache, "".join(lines))
    write_json(meta_path, meta)
    stages.mark("icl_teacher", key, ran=True)
    return targets, meta
