"""bench/rationale.py end to end at --quick sizes on a tiny random LM (offline, seconds), and
the README block it feeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import rationale as bench  # noqa: E402
import render_readme  # noqa: E402

from tests.rationale.conftest import make_tiny_lm  # noqa: E402

pytest.importorskip("reasoning_gym")


def test_mode_recipe_sets_mode_seed_and_one_baseline_per_seed():
    base = bench.load_rationale_recipe(ROOT / "recipes" / "rationale_chain_sum.yaml")
    cot = bench.mode_recipe(base, "cot", 1, quick=False)
    assert cot.train.mode.value == "cot" and cot.train.seed == 1 and cot.data.seed == 1
    assert not cot.evaluate.baseline
    assert bench.mode_recipe(base, "answer", 1, quick=False).evaluate.baseline
    quick = bench.mode_recipe(base, "answer", 0, quick=True, student="/x")
    assert quick.data.num_test == 8 and quick.train.steps == 2 and quick.student.model == "/x"
    assert quick.data.task_options == base.data.task_options


def test_bench_runs_every_mode_and_seed_and_renders(tmp_path: Path):
    lm = make_tiny_lm(tmp_path / "lm")
    out = tmp_path / "r.json"
    argv = ["--quick", "--tasks", "chain_sum", "--seeds", "0", "1", "--student", str(lm)]
    assert bench.main([*argv, "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    res = doc["tasks"]["chain_sum"]["results"]
    assert set(res) == {"untrained", "answer", "cot", "multitask"}
    for r in res.values():
        acc = r["accuracy"]
        assert len(acc["per_seed"]) == 2 and r["total"] == 8
        assert acc["mean"] == pytest.approx(sum(acc["per_seed"]) / 2)
    assert res["cot"]["mean_new_tokens"] > 0 and res["cot"]["train_steps"] == 2
    assert "stand-in for a large teacher" in doc["tasks"]["chain_sum"]["rationales"]
    # a second run reuses every finished run (no training, no evaluation): same figures
    again = tmp_path / "again.json"
    assert bench.main([*argv, "--runs", str(tmp_path / "runs"), "--out", str(again)]) == 0
    assert json.loads(again.read_text())["tasks"] == doc["tasks"]
    # --finished-only trains nothing: a seed that never ran is left out, and the JSON says so
    part = tmp_path / "part.json"
    more = ["--quick", "--tasks", "chain_sum", "--seeds", "0", "7", "--student", str(lm)]
    assert (
        bench.main([*more, "--finished-only", "--runs", str(tmp_path / "runs"), "--out", str(part)])
        == 0
    )
    cot = json.loads(part.read_text())["tasks"]["chain_sum"]["results"]["cot"]
    assert (
        cot["seeds"] == [0]
        and cot["accuracy"]["per_seed"] == res["cot"]["accuracy"]["per_seed"][:1]
    )
    assert not (tmp_path / "runs" / "chain_sum" / "s7").exists()
    block = render_readme.rationale_block(out)
    assert "| chain_sum | (b) rationale then answer (Fine-tune-CoT) |" in block
    assert f"{res['answer']['accuracy']['mean']:.3f} ± " in block
