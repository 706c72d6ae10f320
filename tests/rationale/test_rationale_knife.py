"""Mode knife: the bottleneck mask, the student/teacher token alignment, the loss, and the
teacher as a resumable stage of `run_rationale`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import tinystudent.rationale.knife_run as knife_run
import tinystudent.rationale.pipeline as pipeline_mod
from tests.rationale.conftest import recipe_file, toy_problems
from tinystudent.errors import RecipeError
from tinystudent.rationale.data import Example
from tinystudent.rationale.evaluate import generate_greedy
from tinystudent.rationale.format import Mode, inference_prompt
from tinystudent.rationale.knife import (
    KnifeRow,
    aligned,
    bottleneck_mask,
    encode_knife,
    knife_tensors,
    next_logits,
    oracle_rows,
    teacher_greedy,
    teacher_tensors,
    train_knife_student,
    train_teacher,
)
from tinystudent.rationale.recipe import load_rationale_recipe
from tinystudent.rationale.student import load_student, truncate_layers
from tinystudent.rationale.train import RationaleTrainConfig, encode_examples


def _two(rationale_a: str, rationale_b: str) -> list[Example]:
    q = "Ann has 3 apples and gets 4 more. How many now?"
    return [Example("a", q, "7", rationale_a), Example("b", q, "7", rationale_b)]


def _answer_logits(model: Any, tok: Any, examples: list[Example], masked: bool) -> list[Any]:
    """Per example, the logits at its tail + answer positions (the bottlenecked block)."""
    rows, _ = encode_knife(tok, examples, 512)
    t = teacher_tensors(rows, 0)
    mask = (
        t["mask"]
        if masked
        else bottleneck_mask(
            torch.zeros(len(rows), dtype=torch.long),
            torch.zeros(len(rows), dtype=torch.long),
            torch.tensor([len(r.teacher_ids) for r in rows]),
            t["ids"].shape[1],
        )
    )  # a rationale length of 0: plain causal attention, nothing blocked
    with torch.no_grad():
        logits = model(input_ids=t["ids"], attention_mask=mask).logits
    out = []
    for i, r in enumerate(rows):
        start, end = len(r.rationale) + r.tail, len(r.teacher_ids)
        out.append((logits[i, start:end], logits[i, len(r.rationale) : start]))
    return out


def test_bottleneck_mask_blocks_answer_positions_from_the_rationale(tiny_lm_dir):
    model, tok = load_student(str(tiny_lm_dir))
    # same length, different rationale tokens: positions (and RoPE) line up exactly
    examples = _two("She has 3. Then 3+4=7.", "Xyz qq 9. Then 1+1=2.")
    one = truncate_layers(load_student(str(tiny_lm_dir))[0], 1)
    (ans_a, q_a), (ans_b, q_b) = _answer_logits(one, tok, examples, masked=True)
    # one layer: the answer block's output sees only question and answer inputs
    assert ans_a.shape[0] >= 2 and torch.allclose(ans_a, ans_b, atol=1e-6)
    assert not torch.allclose(q_a, q_b, atol=1e-4)  # the question tokens do read the rationale
    (plain_a, _), (plain_b, _) = _answer_logits(one, tok, examples, masked=False)
    assert not torch.allclose(plain_a, plain_b, atol=1e-4)  # without the mask it leaks
    # two layers: the rationale reaches the answer through the question states (the point)
    (deep_a, _), (deep_b, _) = _answer_logits(model, tok, examples, masked=True)
    assert not torch.allclose(deep_a, deep_b, atol=1e-5)


def test_teacher_greedy_decodes_under_the_bottleneck(tiny_lm_dir):
    _, tok = load_student(str(tiny_lm_dir))
    one = truncate_layers(load_student(str(tiny_lm_dir))[0], 1)
    examples = toy_problems(4, seed=5)
    texts, counts = teacher_greedy(one, tok, examples, max_new_tokens=6, batch_size=3)
    # one layer and RoPE's relative positions: the answer block sees exactly what a student
    # reading the bare prompt sees, so the teacher decodes what plain greedy decoding does
    plain, plain_counts = generate_greedy(
        one, tok, [inference_prompt(e.question, Mode.knife) for e in examples], 6, batch_size=3
    )
    assert texts == plain and counts == plain_counts
    # and its next-token logits are the bare prompt's, which they are not without the mask
    rows = oracle_rows(tok, examples)
    bare = [torch.tensor([r.ids]) for r in rows]
    with torch.no_grad():
        want = torch.stack([one(input_ids=b).logits[0, -1] for b in bare])
    assert torch.allclose(next_logits(one, rows, 0), want, atol=1e-5)
    leaky = [KnifeRow(r.rationale, r.ids, r.labels, r.tail + len(r.ids)) for r in rows]
    assert not torch.allclose(next_logits(one, leaky, 0), want, atol=1e-4)


def test_mask_is_causal_hides_padding_and_only_the_tail_is_cut():
    m = bottleneck_mask(torch.tensor([2]), torch.tensor([4]), torch.tensor([6]), 7)[0, 0] == 0
    assert not m[1, 2] and m[2, 1]  # causal
    assert m[3, 0] and m[3, 1]  # a question position reads the rationale
    assert not m[4, 0] and not m[5, 1] and m[4, 2] and m[5, 4]  # the tail reads only q + a
    assert not m[5, 6] and not m[6, 0] and m[6, 6]  # padding: no key; its row sees itself


def test_student_and_teacher_share_question_answer_tokens_exactly(tiny_lm_dir):
    _, tok = load_student(str(tiny_lm_dir))
    examples = toy_problems(5, seed=3)
    examples[1] = Example("long", examples[1].question, examples[1].answer, "x " * 30)
    rows, too_long = encode_knife(tok, examples, 512)
    answer_groups, _ = encode_examples(tok, examples, Mode.answer, 512)
    assert too_long == 0
    for r, g in zip(rows, answer_groups):
        assert r.ids == g[0].ids and r.labels == g[0].labels  # the answer-only student's rows
        assert r.teacher_ids[len(r.rationale) :] == r.ids
        assert tok.decode(r.ids[r.tail :]).startswith("\nAnswer:")
    # in a padded batch of different rationale lengths, aligned() picks the same tokens
    b = knife_tensors(rows, 0)
    t_at_s = aligned(b["t_ids"][..., None], b["t_offsets"], b["ids"].shape[1])[..., 0]
    valid = b["mask"].bool()
    assert torch.equal(t_at_s[valid], b["ids"][valid])
    assert len({len(r.rationale) for r in rows}) > 1
    # a teacher sequence over the length cap drops the example, counted
    short, dropped = encode_knife(tok, examples, len(rows[1].teacher_ids) - 1)
    assert dropped >= 1 and len(short) == len(rows) - dropped


def test_knife_losses_fall_on_a_tiny_model(tiny_lm_dir):
    torch.manual_seed(0)
    examples = toy_problems(12, seed=1)
    cfg = RationaleTrainConfig(
        mode="knife", steps=12, batch_size=4, lr=3e-3, checkpoint_every=0, max_seq_len=200
    )
    teacher, tok = load_student(str(tiny_lm_dir))
    teacher, t_res = train_teacher(teacher, tok, examples, cfg, progress=False)
    assert t_res.steps == 12 and t_res.losses[-1] < t_res.losses[0]
    student, _ = load_student(str(tiny_lm_dir))
    before = [p.detach().clone() for p in teacher.parameters()]
    student, res = train_knife_student(student, tok, teacher, examples, cfg, progress=False)
    assert set(res.parts) == {"ce", "hidden", "logit"}
    assert sum(res.losses[-3:]) < sum(res.losses[:3])
    assert res.parts["hidden"][-1] < res.parts["hidden"][0]
    # the teacher is frozen while the student trains
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_other_modes_dump_and_hash_as_before_the_knife_key():
    assert "knife" not in RationaleTrainConfig(mode="cot").model_dump(mode="json")
    knife = RationaleTrainConfig(mode="knife", knife={"hidden_weight": 0.5})
    assert knife.model_dump(mode="json")["knife"]["hidden_weight"] == 0.5


def test_knife_section_is_validated(tmp_path, tiny_lm_dir):
    with pytest.raises(RecipeError, match="train.knife belongs to mode knife"):
        load_rationale_recipe(recipe_file(tmp_path, tiny_lm_dir, mode="cot", knife={}))
    with pytest.raises(RecipeError, match="bogus"):
        load_rationale_recipe(recipe_file(tmp_path, tiny_lm_dir, mode="knife", knife={"bogus": 1}))
    with pytest.raises(RecipeError, match="layers"):
        load_rationale_recipe(
            recipe_file(tmp_path, tiny_lm_dir, mode="knife", knife={"layers": "some"})
        )

    with pytest.raises(RecipeError, match="teacher_layers must equal student.num_layers"):
        load_rationale_recipe(
            recipe_file(
                tmp_path, tiny_lm_dir, mode="knife", knife={"layers": "all", "teacher_layers": 1}
            )
        )
    ok = load_rationale_recipe(
        recipe_file(tmp_path, tiny_lm_dir, mode="knife", knife={"layers": "all"})
    )
    assert ok.train.knife is not None and ok.train.knife.temperature == 2.0


def test_layers_all_and_a_smaller_teacher_through_run_rationale(tmp_path, tiny_lm_dir):
    rep = pipeline_mod.run_rationale(
        _knife_recipe(tmp_path, tiny_lm_dir, layers="all"), tmp_path / "all", progress=False
    )
    assert set(rep["train"]["last_parts"]) == {"ce", "hidden", "logit"}
    small = _knife_recipe(tmp_path, tiny_lm_dir, teacher_layers=1)
    rep = pipeline_mod.run_rationale(small, tmp_path / "small", progress=False)
    assert (
        json.loads((tmp_path / "small" / "teacher" / "config.json").read_text())[
            "num_hidden_layers"
        ]
        == 1
    )
    assert rep["train"]["steps"] == 4


def test_killed_teacher_training_resumes_from_its_checkpoint(tmp_path, tiny_lm_dir, monkeypatch):
    import tinystudent.rationale.knife as knife_mod

    recipe, out = _knife_recipe(tmp_path, tiny_lm_dir, teacher_steps=4), tmp_path / "run"
    real, calls = knife_mod.teacher_loss, {"n": 0}

    def killed_at_step_3(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(knife_mod, "teacher_loss", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        pipeline_mod.run_rationale(recipe, out, progress=False)
    monkeypatch.setattr(knife_mod, "teacher_loss", real)
    assert (out / "teacher_checkpoint").is_dir() and not (out / "teacher").exists()
    rep = pipeline_mod.run_rationale(recipe, out, progress=False)
    assert rep["knife"]["teacher_train"]["resumed_from"] == 2
    assert rep["knife"]["teacher_train"]["steps"] == 4
    assert not (out / "teacher_checkpoint").exists()


def _knife_recipe(tmp_path: Path, tiny_lm_dir: Path, **knife: Any) -> Any:
    return load_rationale_recipe(
        recipe_file(tmp_path, tiny_lm_dir, mode="knife", knife={"teacher_steps": 3, **knife})
    )


def _refuse(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} ran again")

    monkeypatch.setattr(module, name, refuse)


def test_run_rationale_knife_reports_and_resumes(tmp_path, tiny_lm_dir, monkeypatch):
    out = tmp_path / "run"
    first = pipeline_mod.run_rationale(_knife_recipe(tmp_path, tiny_lm_dir), out, progress=False)
    assert first["mode"] == "knife"
    first_key = json.loads((out / "stages.json").read_text())["teacher"]
    assert first["stages"] == dict.fromkeys(
        ("rationales", "baseline", "teacher", "student", "teacher_oracle"), "ran"
    )
    assert first["knife"]["teacher_train"]["steps"] == 3 and first["train"]["steps"] == 4
    oracle = first["knife"]["teacher_oracle"]
    assert oracle["total"] == 6 and "oracle" in oracle["what"]
    assert (out / "teacher" / "model.safetensors").is_file()
    assert "knife teacher" in (out / "report.md").read_text()
    # the student answers like answer-only: the same prompt, no rationale
    assert first["student_result"]["max_new_tokens"] == 4

    # a rerun trains nothing
    _refuse(monkeypatch, knife_run, "train_teacher")
    _refuse(monkeypatch, knife_run, "train_knife_student")
    again = pipeline_mod.run_rationale(_knife_recipe(tmp_path, tiny_lm_dir), out, progress=False)
    assert set(again["stages"].values()) == {"skipped"}
    assert again["knife"] == first["knife"]
    monkeypatch.undo()

    # a student-only knob retrains the student against the saved teacher
    _refuse(monkeypatch, knife_run, "train_teacher")
    reweighted = _knife_recipe(tmp_path, tiny_lm_dir, hidden_weight=0.5)
    third = pipeline_mod.run_rationale(reweighted, out, progress=False)
    assert third["stages"]["teacher"] == "skipped" and third["stages"]["student"] == "ran"
    monkeypatch.undo()

    # the teacher's budget is part of its key: a changed one retrains it (and the student)
    fourth = pipeline_mod.run_rationale(
        _knife_recipe(tmp_path, tiny_lm_dir, teacher_steps=2), out, progress=False
    )
    assert fourth["stages"]["teacher"] == "ran" and fourth["stages"]["student"] == "ran"
    assert fourth["knife"]["teacher_train"]["steps"] == 2
    assert json.loads((out / "stages.json").read_text())["teacher"] != first_key
