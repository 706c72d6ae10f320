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
    pinto = bench.mode_recipe(base, "pinto", 0, quick=True, rationalizer="/r")
    assert pinto.train.pinto.rationalizer.model == "/r" and pinto.train.pinto.perturb_rate == 0.5
    again = bench.mode_recipe(pinto, "cot", 0, quick=False, rationalizer="/r")
    assert again.train.pinto is None  # the other modes of a pinto recipe drop its options


def test_bench_runs_every_mode_and_seed_and_renders(tmp_path: Path):
    lm = make_tiny_lm(tmp_path / "lm")
    out = tmp_path / "r.json"
    argv = ["--quick", "--tasks", "chain_sum", "--seeds", "0", "1", "--student", str(lm)]
    argv += ["--rationalizer", str(lm)]
    assert bench.main([*argv, "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    res = doc["tasks"]["chain_sum"]["results"]
    assert set(res) == {
        "untrained",
        "answer",
        "cot",
        "multitask",
        "pinto",
        "knife",
        "icl_0shot",
        "icl_4shot",
        "untrained_4shot",
    }
    # pinto's tokens per answer count the frozen rationalizer's rationale too
    assert res["pinto"]["mean_new_tokens"] > 8
    for r in res.values():
        acc = r["accuracy"]
        assert len(acc["per_seed"]) == 2 and r["total"] == 8
        assert acc["mean"] == pytest.approx(sum(acc["per_seed"]) / 2)
    assert res["cot"]["mean_new_tokens"] > 0 and res["cot"]["train_steps"] == 2
    # the knife teacher is scored with the solver's rationale in its input, once per seed
    assert len(res["knife"]["teacher_oracle_accuracy"]["per_seed"]) == 2
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
    assert "| chain_sum | (b) rationale then answer (Fine-tune-CoT) | 2 |" in block
    assert (
        "| chain_sum | (e) PINTO (frozen prompted rationalizer; its cost included) | 2 |" in block
    )
    assert f"{res['answer']['accuracy']['mean']:.3f} ± " in block


def test_steps_override_runs_apart_and_every_row_names_its_budget(tmp_path: Path):
    lm = make_tiny_lm(tmp_path / "lm")
    runs, base_out, long_out = tmp_path / "runs", tmp_path / "rationale.json", tmp_path / "x.json"
    argv = ["--quick", "--tasks", "chain_sum", "--seeds", "0", "--modes", "answer", "cot"]
    argv += ["--student", str(lm), "--runs", str(runs)]
    assert bench.main([*argv, "--out", str(base_out)]) == 0
    assert bench.main([*argv, "--steps", "3", "--out", str(long_out)]) == 0
    # its own folder: the recipe's 2-step runs are neither reused nor overwritten
    assert (runs / "chain_sum-3steps" / "s0" / "cot" / "report.json").is_file()
    assert (
        json.loads((runs / "chain_sum" / "s0" / "cot" / "report.json").read_text())["train"][
            "steps"
        ]
        == 2
    )
    doc = json.loads(long_out.read_text())
    task = doc["tasks"]["chain_sum"]
    assert doc["steps_override"] == 3 and task["budget"]["steps"] == 3
    assert {task["results"][m]["train_steps"] for m in ("answer", "cot")} == {3}
    block = render_readme.rationale_block(base_out, [long_out])
    assert "| chain_sum | (b) rationale then answer (Fine-tune-CoT) | 2 |" in block
    assert "| chain_sum | (b) rationale then answer (Fine-tune-CoT) | 3 |" in block
    assert "| chain_sum | untrained (zero-shot, answer format) | 0 |" in block
    assert "`bench/results/x.json`" in block and "3 steps x 4" in block


def test_steps_must_be_positive():
    base = bench.load_rationale_recipe(ROOT / "recipes" / "rationale_chain_sum.yaml")
    assert bench.mode_recipe(base, "cot", 0, quick=False, steps=360).train.steps == 360
    with pytest.raises(ValueError, match="--steps must be a positive"):
        bench.mode_recipe(base, "cot", 0, quick=False, steps=0)


def test_icl_mode_has_zero_and_k_shot_rows_and_renders_them(tmp_path: Path):
    base = bench.load_rationale_recipe(ROOT / "recipes" / "rationale_chain_sum.yaml")
    icl = bench.mode_recipe(base, "icl", 0, quick=False)
    assert icl.train.mode.value == "icl" and icl.evaluate.baseline  # untrained k-shot too
    assert icl.train.max_seq_len == max(base.train.max_seq_len, bench.ICL_MAX_SEQ_LEN)
    lm = make_tiny_lm(tmp_path / "lm")
    out = tmp_path / "r.json"
    argv = ["--quick", "--tasks", "chain_sum", "--seeds", "0", "--modes", "icl"]
    assert (
        bench.main(
            [*argv, "--student", str(lm), "--runs", str(tmp_path / "runs"), "--out", str(out)]
        )
        == 0
    )
    res = json.loads(out.read_text())["tasks"]["chain_sum"]["results"]
    assert set(res) == {"icl_0shot", "icl_4shot", "untrained_4shot"}
    assert res["icl_4shot"]["train_steps"] == 2 and "train_steps" not in res["untrained_4shot"]
    assert res["icl_0shot"]["total"] == res["icl_4shot"]["total"] == 8
    block = render_readme.rationale_block(out)
    assert "| chain_sum | (f) in-context distillation, 0-shot prompts | 2 |" in block
    assert "| chain_sum | (f) in-context distillation, 4-shot prompts | 2 |" in block
    assert "| chain_sum | untrained, 4-shot prompts | 0 |" in block


def test_set_overrides_reach_only_their_mode():
    """`--set pinto:KEY=VALUE` changes the pinto runs' recipe (value read as YAML) and no other
    mode's; a malformed override is one clear error."""
    base = bench.load_rationale_recipe(bench.ROOT / "recipes" / "rationale_chain_sum.yaml")
    sets = ["pinto:train.pinto.rationalizer.source=configured", "cot:train.lr=0.001"]
    pinto = bench.mode_recipe(base, "pinto", 0, quick=False, sets=sets)
    assert pinto.train.pinto is not None
    assert pinto.train.pinto.rationalizer.source.value == "configured"
    assert pinto.train.lr == base.train.lr
    assert bench.mode_recipe(base, "cot", 0, quick=False, sets=sets).train.lr == 0.001
    with pytest.raises(ValueError, match="MODE:KEY=VALUE"):
        bench.mode_sets(["train.lr=0.1"], "cot")


def test_table_spec_runs_each_entry_with_seeds_in_parallel(tmp_path: Path):
    """--table runs every entry of a spec into its own JSON; --jobs 2 trains the two seeds in
    two processes, and the JSON assembled from them records the entry's own command."""
    lm = make_tiny_lm(tmp_path / "lm")
    spec = tmp_path / "table.yaml"
    common = f"--quick --tasks chain_sum --student {lm}"
    spec.write_text(
        "runs:\n"
        f"  - {{out: a.json, args: '{common} --seeds 0 1 --modes answer'}}\n"
        f"  - {{out: b.json, args: '{common} --seeds 0 --modes cot --steps 3'}}\n"
    )
    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = ["--table", str(spec), "--jobs", "2", "--runs", str(runs), "--out", str(results)]
    assert bench.main(argv) == 0
    a = json.loads((results / "a.json").read_text())
    assert a["tasks"]["chain_sum"]["results"]["answer"]["seeds"] == [0, 1]
    assert (runs / "chain_sum" / "s1" / "answer" / "report.json").is_file()
    assert a["environment"]["command"].startswith("python bench/rationale.py --quick")
    assert "--seeds 0 1 --modes answer" in a["environment"]["command"]
    b = json.loads((results / "b.json").read_text())
    assert b["tasks"]["chain_sum"]["results"]["cot"]["train_steps"] == 3
    # the table assembled again from finished runs only gives the same figures
    assert bench.main([*argv, "--finished-only"]) == 0
    again = json.loads((results / "a.json").read_text())
    assert again["tasks"] == a["tasks"]


def test_table_spec_needs_out_and_args(tmp_path: Path):
    spec = tmp_path / "t.yaml"
    spec.write_text("runs:\n  - {out: a.json}\n")
    with pytest.raises(SystemExit, match=r"runs\[0\] needs `out`"):
        bench.table_entries(spec)
    assert [o for o, _ in bench.table_entries(ROOT / "bench/specs/rationale_table.yaml")][0] == (
        "rationale.json"
    )
    files = render_readme.rationale_files(ROOT / "bench/specs/rationale_table.yaml")
    assert files and files[0].name == "rationale.json"
