"""reasoning-gym tasks as rationale data, the programmatic solvers (a stand-in teacher) and a
truncated student, each driven the way a user reaches them: recipe -> CLI, or the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tinystudent.cli import main
from tinystudent.errors import DataError, RecipeError
from tinystudent.rationale.format import ANSWER_MARKER
from tinystudent.rationale.gym import gym_scorer, gym_split
from tinystudent.rationale.recipe import parse_rationale_recipe
from tinystudent.rationale.solvers import SOLVERS, SolverRationales
from tinystudent.rationale.sources import filter_rationales
from tinystudent.rationale.student import load_student, save_student

pytest.importorskip("reasoning_gym")

CHAIN = {"min_terms": 4, "max_terms": 4, "min_digits": 1, "max_digits": 1}


def test_split_applies_options_and_holds_out_disjoint_questions():
    train, test = gym_split("chain_sum", CHAIN, 40, 20, seed=3)
    assert len(train) == 40 and len(test) == 20
    assert not {e.question for e in train} & {e.question for e in test}
    assert all(e.meta and len(e.meta["expression"].split()) == 7 for e in train + test)
    again, _ = gym_split("chain_sum", CHAIN, 40, 20, seed=3)
    assert [e.question for e in again] == [e.question for e in train]  # seeded


def test_scorer_is_the_tasks_own_exact_match():
    _, test = gym_split("chain_sum", CHAIN, 1, 5)
    score = gym_scorer("chain_sum", CHAIN)
    ex = test[0]
    assert score(ex.answer, ex)
    assert not score(str(int(ex.answer) + 1), ex)
    assert not score("", ex)


def test_bad_task_or_option_is_one_clear_line():
    with pytest.raises(DataError, match="not a reasoning-gym task"):
        gym_split("no_such_task", {}, 2, 2)
    with pytest.raises(DataError, match="task_options for 'chain_sum'"):
        gym_split("chain_sum", {"min_termz": 3}, 2, 2)


@pytest.mark.parametrize(
    ("task", "options"),
    [
        ("chain_sum", {"min_terms": 3, "max_terms": 6, "min_digits": 1, "max_digits": 2}),
        (
            "decimal_chain_sum",
            {
                "min_terms": 3,
                "max_terms": 5,
                "min_digits": 1,
                "max_digits": 2,
                "min_decimal_places": 1,
                "max_decimal_places": 2,
            },
        ),
        ("letter_counting", {"min_words": 3, "max_words": 6}),
        ("count_bits", {"max_n": 5000}),
        ("leg_counting", {"min_animals": 2, "max_animals": 4, "max_instances": 5}),
        (
            "basic_arithmetic",
            {
                "min_terms": 3,
                "max_terms": 4,
                "min_digits": 1,
                "max_digits": 1,
                "operators": ["+", "-", "*"],
                "allow_negation": False,
            },
        ),
    ],
)
def test_solver_rationales_reach_the_right_answer(task: str, options: dict):
    """Every solver-written solution passes the task's scorer (the filter keeps all of them)
    and its last step states the answer."""
    train, _ = gym_split(task, options, 30, 5, seed=1)
    source = SolverRationales(task)
    assert "stand-in for a large teacher" in source.name
    cands = source.candidates(train, seed=0)
    kept, stats = filter_rationales(train, cands, gym_scorer(task, options))
    assert stats.kept == len(train) == len(kept)
    for ex, [text] in zip(train, cands):
        steps, answer = text.rsplit(ANSWER_MARKER, 1)
        assert answer.strip() == ex.answer
        last = steps.strip().splitlines()[-1]
        if task in ("chain_sum", "decimal_chain_sum", "basic_arithmetic"):
            assert last.endswith(f"= {ex.answer}")
        elif task in ("letter_counting", "leg_counting"):
            assert last.endswith(f"total {ex.answer}")
        else:
            assert len(last.split()) - 1 == int(ex.answer) or ex.answer == "0"


def test_solver_for_an_unknown_task_says_what_exists():
    with pytest.raises(DataError, match="no programmatic solver for task 'gcd'"):
        SolverRationales("gcd")
    assert {"chain_sum", "decimal_chain_sum", "letter_counting", "count_bits"} <= set(SOLVERS)
    assert "leg_counting" in SOLVERS


def test_leg_counting_solver_recalls_each_animals_legs():
    from tinystudent.rationale.solvers import leg_counting

    assert leg_counting({"animals": {"spider": 3, "snake": 2, "duck": 1}}) == (
        "spider: 3 * 8 = 24, total 24\nsnake: 2 * 0 = 0, total 24\nduck: 1 * 2 = 2, total 26"
    )


def test_recipe_checks_task_and_solver():
    with pytest.raises(RecipeError, match="needs task"):
        parse_rationale_recipe({"data": {"source": "reasoning_gym"}})
    with pytest.raises(RecipeError, match="belong to source reasoning_gym"):
        parse_rationale_recipe({"data": {"task": "chain_sum"}})
    with pytest.raises(RecipeError, match="solver needs data.source reasoning_gym"):
        parse_rationale_recipe({"rationales": {"source": "solver"}})
    with pytest.raises(RecipeError, match="student.num_layers"):
        parse_rationale_recipe({"student": {"num_layers": 0}})


def test_truncated_student_saves_and_reloads_smaller(tmp_path: Path, tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir), num_layers=1)
    assert len(model.model.layers) == 1 and model.config.num_hidden_layers == 1
    save_student(model, tok, tmp_path / "s", {"key": "k"})
    again, _ = load_student(str(tmp_path / "s"))
    assert len(again.model.layers) == 1
    with pytest.raises(DataError, match="num_layers=9 but the model has 2 layers"):
        load_student(str(tiny_lm_dir), num_layers=9)


@pytest.mark.parametrize("mode", ["cot", "multitask"])
def test_cli_reasoning_gym_with_solver_and_truncated_student(
    tmp_path: Path, tiny_lm_dir: Path, mode: str
):
    recipe = {
        "name": "chain",
        "data": {
            "source": "reasoning_gym",
            "task": "chain_sum",
            "task_options": CHAIN,
            "num_train": 12,
            "num_test": 4,
        },
        "rationales": {"source": "solver"},
        "student": {"model": str(tiny_lm_dir), "num_layers": 1},
        "train": {
            "mode": mode,
            "num_examples": 8,
            "steps": 2,
            "batch_size": 4,
            "lr": 3e-3,
            "max_seq_len": 400,
            "checkpoint_every": 0,
        },
        "evaluate": {"batch_size": 4, "max_new_tokens": 4, "cot_max_new_tokens": 8},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["rationale", str(path), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["task"] == "chain_sum" and report["num_layers"] == 1
    assert report["rationales"]["source"].startswith("solver:chain_sum")
    assert report["rationales"]["stats"]["kept"] == 8
    assert report["student_result"]["total"] == 4
    assert json.loads((out / "student" / "config.json").read_text())["num_hidden_layers"] == 1
    first = json.loads((out / "rationales.jsonl").read_text().splitlines()[0])
    assert first["meta"]["expression"] in first["question"]


def test_basic_arithmetic_solver_follows_precedence_and_brackets():
    """Multiplication before subtraction, brackets first, a negated bracket is its own step,
    a negative literal is not; division is refused rather than guessed."""
    from tinystudent.rationale.solvers import basic_arithmetic

    assert basic_arithmetic({"expression": "2 - -1 * -2"}) == "-1 * -2 = 2\n2 - 2 = 0"
    assert basic_arithmetic({"expression": "( 7 - -6 ) - -5"}) == "7 - -6 = 13\n13 - -5 = 18"
    assert basic_arithmetic({"expression": "-( 5 + -8 ) * 2"}) == (
        "5 + -8 = -3\n-(-3) = 3\n3 * 2 = 6"
    )
    with pytest.raises(ValueError, match=r"\+ - \* only"):
        basic_arithmetic({"expression": "8 / 2"})


def test_decimal_chain_sum_solver_is_exact_and_keeps_decimal_places():
    from tinystudent.rationale.solvers import decimal_chain_sum

    # 0.1 + 0.2 in floats is 0.30000000000000004; the steps must not show that.
    assert (
        decimal_chain_sum({"expression": "0.1 + 0.2 - 0.3"}) == "0.1 + 0.2 = 0.3\n0.3 - 0.3 = 0.0"
    )
    assert (
        decimal_chain_sum({"expression": "8.2 + 0.6 - 7.8"}) == "8.2 + 0.6 = 8.8\n8.8 - 7.8 = 1.0"
    )
    with pytest.raises(ValueError, match="only \\+ and -"):
        decimal_chain_sum({"expression": "1.5 * 2.0"})
    with pytest.raises(ValueError, match="not a chain of decimals"):
        decimal_chain_sum({"expression": "1.5 + x"})
