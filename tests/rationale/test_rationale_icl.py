"""Mode icl (in-context-learning distillation): seeded demonstrations that never hold the
query, shot counts within bounds, the LM loss on demonstration tokens only, soft targets, and
`run_rationale` end to end (0-shot and k-shot figures, resume, the LM teacher's cache)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import tinystudent.rationale.icl_run as icl_run_mod
from tests.rationale.conftest import recipe_file, toy_problems
from tinystudent.errors import DataError, RecipeError
from tinystudent.rationale.data import Example
from tinystudent.rationale.icl import (
    DEMO_SEP,
    SoftTarget,
    encode_prompt,
    eval_prompts,
    few_shot,
    icl_losses,
    icl_tensors,
    training_prompts,
)
from tinystudent.rationale.icl_run import vouched
from tinystudent.rationale.pipeline import run_rationale
from tinystudent.rationale.recipe import load_rationale_recipe, parse_rationale_recipe
from tinystudent.rationale.student import load_student
from tinystudent.train.causal_lm import IGNORE, masked_lm_loss, pad_right


def _demo_questions(demos: str) -> list[str]:
    return [b.split("\n")[0].removeprefix("Question: ") for b in demos.split(DEMO_SEP) if b]


def test_training_demonstrations_are_seeded_and_never_the_query():
    data = toy_problems(30)
    # A repeat of question 0 under another id must not serve as its demonstration either.
    data.append(Example("dup", data[0].question, data[0].answer))
    a = training_prompts(data, 2, 4, seed=0)
    assert a == training_prompts(data, 2, 4, seed=0)
    assert a != training_prompts(data, 2, 4, seed=1)
    for ex, p in zip(data, a):
        assert p.query == f"Question: {ex.question}\nAnswer:" and p.answer == ex.answer
        questions = _demo_questions(p.demos)
        assert len(questions) == p.shots and ex.question not in questions
        assert len(set(questions)) == len(questions)  # distinct demonstrations


def test_shot_counts_stay_within_bounds_and_reach_both_ends():
    data = toy_problems(60)
    shots = [p.shots for p in training_prompts(data, 1, 3, seed=0)]
    assert set(shots) == {1, 2, 3}
    assert {p.shots for p in training_prompts(data, 2, 2, seed=0)} == {2}
    zero = training_prompts(data, 0, 0, seed=0)
    assert all(p.shots == 0 and p.demos == "" for p in zero)
    # A pool smaller than k gives every other question, never the query.
    tiny = training_prompts(data[:3], 5, 5, seed=0)
    assert [p.shots for p in tiny] == [2, 2, 2]


def test_eval_demonstrations_are_fixed_per_test_question():
    pool, test = toy_problems(40), toy_problems(8, seed=99, prefix="t")
    full = eval_prompts(test, pool, 4, seed=0)
    # The same question gets the same demonstrations whatever else is evaluated with it.
    assert eval_prompts(test[3:5], pool, 4, seed=0) == full[3:5]
    assert all(p.shots == 4 for p in full)
    assert eval_prompts(test, pool, 4, seed=1) != full
    assert [p.text for p in eval_prompts(test, pool, 0, seed=0)] == [p.query for p in full]
    with pytest.raises(DataError, match="demonstrations"):
        eval_prompts(test, [], 4, seed=0)


def test_lm_labels_cover_the_demonstrations_only(tiny_lm_dir: Path):
    _, tok = load_student(str(tiny_lm_dir))
    data = toy_problems(5)
    p = few_shot(data[1:3], data[0])
    row = encode_prompt(tok, p, with_lm=True)
    assert row.ids == tok.encode(p.text, add_special_tokens=False) + [
        t for t in row.labels if t != IGNORE
    ]
    assert row.lm_labels is not None
    lm_ids = [t for t in row.lm_labels if t != IGNORE]
    assert tok.decode(lm_ids) == p.demos  # every demonstration token, nothing of the query
    assert tok.decode([t for t in row.labels if t != IGNORE], skip_special_tokens=True) == (
        f" {data[0].answer}"
    )
    assert encode_prompt(tok, p, with_lm=False).lm_labels is None
    assert encode_prompt(tok, few_shot([], data[0]), with_lm=True).lm_labels is None


def test_losses_split_the_query_answer_from_the_demonstrations(tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir))
    data = toy_problems(6)
    rows = [encode_prompt(tok, few_shot(data[1:3], data[0]), with_lm=True)]
    got = icl_losses(model, icl_tensors(rows, 0))
    # ict: exactly the answer-token loss of the plain target-only objective.
    ids, mask, labels = pad_right([rows[0].ids], [rows[0].labels], 0)
    assert torch.allclose(got["ict"], masked_lm_loss(model, ids, mask, labels), atol=1e-5)
    # lm: the demonstrations only, so another query after them leaves it unchanged (causal).
    other = encode_prompt(tok, few_shot(data[1:3], data[4]), with_lm=True)
    again = icl_losses(model, icl_tensors([other], 0))
    assert torch.allclose(again["lm"], got["lm"], atol=1e-6)
    assert not torch.allclose(again["ict"], got["ict"])
    no_lm = encode_prompt(tok, few_shot(data[1:3], data[0]), with_lm=False)
    assert set(icl_losses(model, icl_tensors([no_lm], 0))) == {"ict"}


def test_a_padded_batch_scores_each_row_as_alone(tiny_lm_dir: Path):
    # Rows of 0, 1 and 3 shots: left padding must not change any row's loss.
    model, tok = load_student(str(tiny_lm_dir))
    data = toy_problems(8)
    rows = [
        encode_prompt(tok, few_shot(data[1 : 1 + k], data[k + 4]), with_lm=False) for k in (0, 1, 3)
    ]
    n = [sum(t != IGNORE for t in r.labels) for r in rows]
    alone = [float(icl_losses(model, icl_tensors([r], 0))["ict"].detach()) for r in rows]
    batch = float(icl_losses(model, icl_tensors(rows, 0))["ict"].detach())
    assert batch == pytest.approx(sum(a * k for a, k in zip(alone, n)) / sum(n), rel=1e-4)
    # The same with soft targets: each row's teacher logits land on its own answer tokens.
    gen = torch.Generator().manual_seed(0)
    soft_rows = []
    for k in (0, 1, 3):
        p = few_shot(data[1 : 1 + k], data[k + 4])
        answer = tok.encode(f" {p.answer}", add_special_tokens=False)
        ids = [torch.randperm(40, generator=gen)[:5].tolist() for _ in answer]
        logits = [torch.randn(5, generator=gen).tolist() for _ in answer]
        soft_rows.append(encode_prompt(tok, p, False, SoftTarget(answer, ids, logits)))
    alone = [float(icl_losses(model, icl_tensors([r], 0), 2.0)["ict"].detach()) for r in soft_rows]
    batch = float(icl_losses(model, icl_tensors(soft_rows, 0), 2.0)["ict"].detach())
    assert batch == pytest.approx(sum(a * k for a, k in zip(alone, n)) / sum(n), rel=1e-4)


def test_soft_targets_equal_to_the_student_have_zero_kl(tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir))
    p = few_shot(toy_problems(3)[1:], toy_problems(3)[0])
    prompt_ids = tok.encode(p.text, add_special_tokens=False)
    answer = tok.encode(f" {p.answer}", add_special_tokens=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + answer])).logits[0]
    n, vocab = len(prompt_ids), logits.shape[-1]
    own = logits[n - 1 : n - 1 + len(answer)]  # the student's distribution at each answer token
    soft = SoftTarget(answer, [list(range(vocab))] * len(answer), own.tolist())
    row = encode_prompt(tok, p, with_lm=False, soft=soft)
    hard = encode_prompt(tok, p, with_lm=False)
    assert row.ids == hard.ids  # the teacher's tokens replace the labels' answer
    for T in (1.0, 2.0):
        with_soft = icl_losses(model, icl_tensors([row], 0), T)["ict"]
        # Only the EOS position (a hard target) is left: its CE over (answer + EOS) tokens.
        eos_ce = torch.nn.functional.cross_entropy(logits[-1:], torch.tensor([tok.eos_token_id]))
        assert torch.allclose(with_soft, eos_ce / (len(answer) + 1), atol=1e-4)
    wrong = SoftTarget(answer, [[5, 6]] * len(answer), [[0.0, 0.0]] * len(answer))
    far = icl_losses(model, icl_tensors([encode_prompt(tok, p, False, wrong)], 0))["ict"]
    assert float(far.detach()) > float(with_soft.detach()) + 0.1


def test_recipe_keys_are_validated(tmp_path: Path, tiny_lm_dir: Path):
    base = {"data": {"source": "gsm_symbolic"}, "train": {"mode": "cot", "icl": {}}}
    with pytest.raises(RecipeError, match="icl is the section of mode icl"):
        parse_rationale_recipe(base)
    with pytest.raises(RecipeError, match="min_shots 3 > max_shots 2"):
        parse_rationale_recipe({"train": {"mode": "icl", "icl": {"min_shots": 3, "max_shots": 2}}})
    with pytest.raises(RecipeError, match="shots"):
        parse_rationale_recipe({"train": {"mode": "icl", "icl": {"shots": 3}}})
    r = parse_rationale_recipe({"train": {"mode": "icl"}})
    assert r.train.icl is not None and r.train.icl.eval_shots == 4  # defaults, in the hashes
    other = parse_rationale_recipe({"train": {"mode": "icl", "icl": {"lm_weight": 0.0}}})
    assert r.training_hash() != other.training_hash()
    # Other modes' saved recipes and hashes carry no icl key (finished runs stay reusable).
    assert "icl" not in parse_rationale_recipe({}).model_dump(mode="json")["train"]


def test_vouched_keeps_the_questions_a_source_answered_right():
    qs = toy_problems(4)
    kept = [Example(f"{qs[2].id}#0", qs[2].question, qs[2].answer, "steps")]
    assert vouched(qs, kept) == [qs[2]]


def _icl_recipe(tmp_path: Path, tiny_lm_dir: Path, **icl: Any) -> Any:
    path = recipe_file(tmp_path, tiny_lm_dir, mode="icl", max_seq_len=400, icl=icl)
    return load_rationale_recipe(path)


def test_run_rationale_icl_reports_zero_and_k_shot_and_resumes(tmp_path, tiny_lm_dir, monkeypatch):
    recipe, out = _icl_recipe(tmp_path, tiny_lm_dir, eval_shots=3), tmp_path / "run"
    report = run_rationale(recipe, out, progress=False)
    results = report["icl"]["results"]
    assert set(results) == {"icl_0shot", "icl_3shot"}
    assert results["icl_0shot"] == report["student_result"]
    assert results["icl_3shot"]["total"] == 6 and report["icl"]["untrained_3shot"]["total"] == 6
    info = report["train"]["icl"]
    assert info["kept"] == 16 and sum(info["shots"].values()) == 16
    assert set(info["shots"]) <= {"0", "1", "2", "3", "4"}
    assert report["budget"]["icl"]["eval_shots"] == 3
    md = (out / "report.md").read_text()
    assert "| icl 0-shot |" in md and "| icl 3-shot |" in md and "| untrained 3-shot |" in md
    assert len((out / "predictions_3shot.jsonl").read_text().splitlines()) == 6

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the student was trained again")

    monkeypatch.setattr(icl_run_mod, "train_icl", refuse)
    again = run_rationale(recipe, out, progress=False)
    assert again["stages"] == {
        "baseline": "skipped",
        "student": "skipped",
        "baseline_3shot": "skipped",
    }
    for name, r in results.items():  # the same student and prompts: the same answers
        assert again["icl"]["results"][name]["correct"] == r["correct"]
    assert again["train"] == report["train"]


def test_lm_weight_zero_trains_without_the_lm_term(tmp_path, tiny_lm_dir, monkeypatch):
    seen: list[set[str]] = []
    real = icl_run_mod.icl_losses

    def spy(model: Any, t: dict[str, Any], temperature: float = 1.0) -> Any:
        got = real(model, t, temperature)
        seen.append(set(got))
        return got

    monkeypatch.setattr(icl_run_mod, "icl_losses", spy)
    run_rationale(_icl_recipe(tmp_path, tiny_lm_dir, lm_weight=0.0), tmp_path / "a", False)
    without = list(seen)
    seen.clear()
    run_rationale(_icl_recipe(tmp_path, tiny_lm_dir, min_shots=1), tmp_path / "b", False)
    assert without and all(s == {"ict"} for s in without)
    assert seen and all(s == {"ict", "lm"} for s in seen)


def test_too_long_prompts_are_dropped_and_counted(tmp_path, tiny_lm_dir):
    # One toy demonstration is ~80 characters (tokens): 200 leaves room for at most one.
    path = recipe_file(tmp_path, tiny_lm_dir, mode="icl", max_seq_len=200)
    report = run_rationale(load_rationale_recipe(path), tmp_path / "run", progress=False)
    info = report["train"]["icl"]
    assert (
        info["dropped_too_long"] > 0
        and report["train"]["dropped_too_long"] == info["dropped_too_long"]
    )
    assert info["kept"] + info["dropped_too_long"] == 16
    assert set(info["shots"]) <= {"0", "1"}
    path = recipe_file(tmp_path, tiny_lm_dir, mode="icl", max_seq_len=20)
    with pytest.raises(DataError, match="no icl training prompt fits"):
        run_rationale(load_rationale_recipe(path), tmp_path / "run2", progress=False)


def test_lm_teacher_outputs_are_a_cached_stage(tmp_path, tiny_lm_dir, monkeypatch):
    recipe = _icl_recipe(tmp_path, tiny_lm_dir, teacher=str(tiny_lm_dir), temperature=2.0)
    out = tmp_path / "run"
    report = run_rationale(recipe, out, progress=False)
    assert report["stages"]["icl_teacher"] == "ran"
    rows = [json.loads(x) for x in (out / "icl_teacher.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(len(r["top_ids"]) == len(r["tokens"]) for r in rows)
    teacher = report["train"]["icl"]["teacher"]
    assert teacher["teacher"] == str(tiny_lm_dir) and teacher["prompts"] == 16
    assert report["rationales"]["source"].startswith("none (icl, teacher")

    # A killed training reruns the student stage but never prompts the teacher again.
    import tinystudent.rationale.icl_teacher as teacher_mod

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the teacher was prompted again")

    monkeypatch.setattr(teacher_mod, "teacher_answers", refuse)
    (out / "stages.json").write_text(
        json.dumps(
            {
                k: v
                for k, v in json.loads((out / "stages.json").read_text()).items()
                if k != "student"
            }
        )
    )
    again = run_rationale(recipe, out, progress=False)
    assert again["stages"]["icl_teacher"] == "skipped" and again["stages"]["student"] == "ran"


def test_killed_icl_run_resumes_from_its_checkpoint_to_the_same_losses(
    tmp_path, tiny_lm_dir, monkeypatch
):
    recipe = _icl_recipe(tmp_path, tiny_lm_dir)
    straight = run_rationale(recipe, tmp_path / "straight", progress=False)
    calls = {"n": 0}
    real = icl_run_mod.icl_losses

    def killed_at_step_4(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(icl_run_mod, "icl_losses", killed_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        run_rationale(recipe, out, progress=False)
    monkeypatch.setattr(icl_run_mod, "icl_losses", real)
    assert (out / "checkpoint").is_dir() and not (out / "student").exists()
    report = run_rationale(recipe, out, progress=False)
    assert report["train"]["resumed_from"] == 2 and report["train"]["steps"] == 4
    assert report["train"]["last_loss"] == pytest.approx(straight["train"]["last_loss"], rel=1e-5)
