"""Mode pinto: seeded rationale perturbation, the counterfactual entropy term, the frozen
rationalizer's resumable stage, and `run_rationale` end to end on a tiny random LM."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import tinystudent.rationale.pipeline as pipeline_mod
import tinystudent.rationale.rationalizer as rationalizer_mod
from tests.rationale.conftest import recipe_file, toy_problems
from tinystudent.errors import RecipeError
from tinystudent.rationale.format import Task, pinto_prompt
from tinystudent.rationale.pinto import (
    PintoConfig,
    RationalizerSpec,
    answer_entropy,
    counterfactual_loss,
    perturb,
    pinto_rows,
)
from tinystudent.rationale.rationalizer import cut_rationale, fewshot_prompt, rationalize_stage
from tinystudent.rationale.recipe import load_rationale_recipe, parse_rationale_recipe
from tinystudent.rationale.student import load_student
from tinystudent.stages import Stages
from tinystudent.train.causal_lm import IGNORE, pad_right


def _long_rationales(n: int) -> list:
    return [
        replace(e, rationale=f"{e.rationale} So the count is {e.answer} apples in all.")
        for e in toy_problems(n)
    ]


def test_perturb_changes_only_the_span_at_the_rate_and_is_seeded():
    ids = list(range(100))
    vocab = list(range(500, 520))
    a = perturb(ids, 20, 60, 0.25, vocab, random.Random(7))
    assert a == perturb(ids, 20, 60, 0.25, vocab, random.Random(7))
    assert a != perturb(ids, 20, 60, 0.25, vocab, random.Random(8))
    changed = [i for i in range(100) if a[i] != ids[i]]
    assert len(changed) == 10 and all(20 <= i < 60 for i in changed)
    assert all(a[i] in vocab for i in changed)


def test_pinto_rows_perturb_only_rationale_tokens(tiny_lm_dir: Path):
    _, tok = load_student(str(tiny_lm_dir))
    examples = _long_rationales(6)
    cfg = PintoConfig(perturb_rate=0.4)
    groups = pinto_rows(tok, examples, cfg, seed=3)
    assert groups == pinto_rows(tok, examples, cfg, seed=3)
    assert groups != pinto_rows(tok, examples, cfg, seed=4)
    vocab = {t for e in examples for t in tok.encode(" " + e.rationale, add_special_tokens=False)}
    for ex, ((ids, labels, task), (bad, bad_labels, cf_task)) in zip(examples, groups):
        assert task is Task.label and cf_task is Task.counterfactual
        answer = tok.encode(f" {ex.answer}", add_special_tokens=False)
        prompt = ids[: len(ids) - len(answer) - 1]  # the clean row ends with answer + EOS
        assert [x for x in labels if x != IGNORE] == answer + [tok.eos_token_id]
        assert prompt == tok.encode(pinto_prompt(ex.question, ex.rationale))
        assert bad[len(prompt) :] == answer  # the twin's target: the answer, no EOS
        assert [x for x in bad_labels if x != IGNORE] == answer
        head = len(tok.encode(pinto_prompt(ex.question, "").split("\nAnswer:")[0]))
        n = len(tok.encode(" " + ex.rationale))
        changed = [i for i in range(len(prompt)) if bad[i] != prompt[i]]
        assert len(changed) == round(0.4 * n)  # the rate, exactly
        assert all(head <= i < head + n for i in changed)  # inside the rationale only
        assert all(bad[i] in vocab for i in changed)


def _counterfactual_batch(tok: Any, n: int = 4) -> tuple[torch.Tensor, ...]:
    groups = pinto_rows(tok, _long_rationales(n), PintoConfig(), seed=0)
    cf = [g[1] for g in groups]
    return pad_right([r[0] for r in cf], [r[1] for r in cf], int(tok.pad_token_id))


def test_a_step_on_the_counterfactual_loss_raises_answer_entropy(tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir))
    batch = _counterfactual_batch(tok)
    torch.manual_seed(0)
    with torch.no_grad():  # a confident start, so there is entropy to gain
        model.lm_head.weight.mul_(8.0)
    before = float(answer_entropy(model, *batch).detach())
    loss = counterfactual_loss(model, *batch)
    assert float(loss.detach()) == pytest.approx(-before, rel=1e-5)  # the sign: loss is -entropy
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        counterfactual_loss(model, *batch).backward()
        opt.step()
    assert float(answer_entropy(model, *batch).detach()) > before + 1e-3


def test_fewshot_prompt_leaves_out_the_question_asked_and_cut_stops():
    demos = toy_problems(3)
    prompt = fewshot_prompt(demos[0].question, demos, num_shots=2)
    assert prompt.count(demos[0].question) == 1  # asked, not also shown solved
    assert prompt.count("Question:") == 3
    assert prompt.endswith(f"Question: {demos[0].question}\nRationale:")
    assert f"Rationale: {demos[1].rationale}\nAnswer: {demos[1].answer}" in prompt
    assert cut_rationale(" 3 + 4 = 7\nAnswer: 7\n\nQuestion: x") == "3 + 4 = 7"
    assert cut_rationale(" a\nb\n\nQuestion: y") == "a\nb"
    assert cut_rationale(" 5 + 9 =\nRationale: 5 + 9 =") == "5 + 9 ="


def _stage(tmp_path: Path, tiny_lm_dir: Path, n: int = 12):
    spec = RationalizerSpec(model=str(tiny_lm_dir), num_shots=2, max_new_tokens=6, batch_size=2)
    questions = [(f"q/{i}", e.question) for i, e in enumerate(toy_problems(n, seed=5))]
    return spec, questions, toy_problems(3)


def test_rationalizer_stage_caches_and_resumes(tmp_path: Path, tiny_lm_dir: Path, monkeypatch):
    spec, questions, demos = _stage(tmp_path, tiny_lm_dir)
    real = rationalizer_mod.generate_rationales
    seen: list[int] = []

    def crash_on_second_chunk(model, tok, prompts, spec_, progress=False):
        seen.append(len(prompts))
        if len(seen) == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(model, tok, prompts, spec_, progress)

    monkeypatch.setattr(rationalizer_mod, "generate_rationales", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        rationalize_stage(Stages(tmp_path), "k1", questions, demos, spec)
    partial = json.loads((tmp_path / "pinto_rationales.partial.json").read_text())
    assert partial["key"] == "k1" and len(partial["rationales"]) == 8  # 4 batches of 2

    monkeypatch.setattr(rationalizer_mod, "generate_rationales", real)
    stages = Stages(tmp_path)
    out = rationalize_stage(stages, "k1", questions, demos, spec)
    assert stages.ran == {"pinto_rationales": "ran"} and list(out) == [u for u, _ in questions]
    assert {u: out[u] for u in partial["rationales"]} == partial["rationales"]  # kept, not redone
    assert not (tmp_path / "pinto_rationales.partial.json").exists()
    row = out["q/0"]
    assert 1 <= row["new_tokens"] <= 6 and row["prompt_tokens"] > 50 and row["seconds"] > 0

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("rationales were generated again")

    monkeypatch.setattr(rationalizer_mod, "generate_rationales", refuse)
    stages = Stages(tmp_path)
    assert rationalize_stage(stages, "k1", questions, demos, spec) == out
    assert stages.ran == {"pinto_rationales": "skipped"}
    monkeypatch.setattr(rationalizer_mod, "generate_rationales", real)
    again = rationalize_stage(Stages(tmp_path), "k2", questions[:3], demos, spec)  # another key
    assert list(again) == [u for u, _ in questions[:3]]


def _pinto_recipe(tmp_path: Path, tiny_lm_dir: Path, **pinto: Any):
    rationalizer = {"model": str(tiny_lm_dir), "num_shots": 2, "max_new_tokens": 6}
    rationalizer.update(pinto.pop("rationalizer", {}))
    path = recipe_file(
        tmp_path,
        tiny_lm_dir,
        mode="pinto",
        steps=3,
        pinto={"rationalizer": {**rationalizer, "batch_size": 4}, **pinto},
    )
    return load_rationale_recipe(path)


def test_run_rationale_pinto_writes_a_report_and_reruns(tmp_path, tiny_lm_dir, monkeypatch):
    recipe, out = _pinto_recipe(tmp_path, tiny_lm_dir), tmp_path / "run"
    report = pipeline_mod.run_rationale(recipe, out, progress=False)
    assert report["mode"] == "pinto"
    assert report["stages"] == {
        "rationales": "ran",  # the demonstrations' rationales (the dataset's)
        "pinto_rationales": "ran",
        "baseline": "ran",
        "student": "ran",
    }
    cache = json.loads((out / "pinto_rationales.json").read_text())["rationales"]
    assert len(cache) == 16 + 6 and sum(k.startswith("test/") for k in cache) == 6
    r, cost = report["student_result"], report["rationales"]["rationalizer"]["test"]
    assert r["mean_new_tokens"] == pytest.approx(r["student_new_tokens"] + cost["new_tokens"])
    assert r["seconds_per_answer"] == pytest.approx(
        r["student_seconds_per_answer"] + cost["seconds"]
    )
    assert cost["new_tokens"] >= 1 and report["train"]["steps"] == 3
    assert report["budget"]["pinto"]["counterfactual_weight"] == 0.5
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 6 and all(
        p["rationale"] == cache[f"test/{p['id']}"]["text"] for p in preds
    )  # the student read the frozen rationalizer's rationale
    md = (out / "report.md").read_text()
    assert "| pinto |" in md and "include the rationalizer" in md

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("redone")

    monkeypatch.setattr(pipeline_mod, "train_student", refuse)
    monkeypatch.setattr(rationalizer_mod, "generate_rationales", refuse)
    again = pipeline_mod.run_rationale(recipe, out, progress=False)
    assert set(again["stages"].values()) == {"skipped"}


def test_source_configured_trains_on_the_recipes_rationales(tmp_path, tiny_lm_dir):
    recipe = _pinto_recipe(tmp_path, tiny_lm_dir, rationalizer={"source": "configured"})
    out = tmp_path / "run"
    report = pipeline_mod.run_rationale(recipe, out, progress=False)
    cache = json.loads((out / "pinto_rationales.json").read_text())["rationales"]
    assert sorted(cache) == [f"test/test-{i}" for i in range(6)]  # test questions only
    assert report["rationales"]["stats"]["kept"] == 16  # the dataset's, filtered
    assert report["rationales"]["source"].startswith("dataset (training), frozen ")
    assert report["rationales"]["rationalizer"]["train"] is None


def test_pinto_keys_are_validated(tmp_path, tiny_lm_dir):
    doc = yaml.safe_load(recipe_file(tmp_path, tiny_lm_dir, mode="cot").read_text())
    assert "pinto" not in parse_rationale_recipe(doc).model_dump()["train"]
    doc["train"]["pinto"] = {"perturb_rate": 0.3}
    with pytest.raises(RecipeError, match="pinto is for train.mode pinto, not cot"):
        parse_rationale_recipe(doc)
    doc["train"]["mode"] = "pinto"
    assert parse_rationale_recipe(doc).train.pinto.perturb_rate == 0.3
    for bad in ({"perturb_rate": 0}, {"rationalizer": {"num_shot": 3}}):
        doc["train"]["pinto"] = bad
        with pytest.raises(RecipeError, match="pinto"):
            parse_rationale_recipe(doc)
    doc["train"]["pinto"] = {}
    default = parse_rationale_recipe(doc)
    doc["train"]["pinto"] = {"counterfactual_weight": 0.1}
    assert parse_rationale_recipe(doc).training_hash() != default.training_hash()


@pytest.mark.parametrize("weight", [0.5, 0.0])
def test_train_student_in_pinto_mode_adds_the_counterfactual_term(tiny_lm_dir: Path, weight):
    from tinystudent.rationale.train import RationaleTrainConfig, train_student

    model, tok = load_student(str(tiny_lm_dir))
    cfg = RationaleTrainConfig(
        mode="pinto",
        steps=3,
        batch_size=4,
        lr=3e-3,
        max_seq_len=200,
        pinto={"counterfactual_weight": weight},
    )
    _, result = train_student(model, tok, _long_rationales(8), cfg, progress=False)
    cf, label = result.task_losses["counterfactual"], result.task_losses["label"]
    if weight:  # the total is label CE + weight * (-entropy); -entropy is negative
        assert len(cf) == 3 and all(c < 0 for c in cf)
        assert result.losses == pytest.approx([lo + weight * c for lo, c in zip(label, cf)])
    else:  # no twins are made: the objective is the label loss alone
        assert cf == [] and result.losses == pytest.approx(label)
