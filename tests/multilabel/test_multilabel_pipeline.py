"""Multi-label end to end through the Python API and the CLI: data -> frozen teacher ->
bce student -> report -> ONNX export -> Predictor and HTTP label sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tinystudent
from tinystudent.errors import RecipeError
from tinystudent.recipe import Recipe, parse_recipe

STUDENT = {"kind": "bag", "init": "random", "embed_dim": 16, "head_hidden": 0}


def _distill(data: Path, teacher_dir: Path, out: Path, **kw: Any) -> tinystudent.DistillResult:
    return tinystudent.distill(
        data,
        multi_label=True,
        label_column="labels",
        k=6,
        test_size=40,
        teacher={"kind": "frozen", "model": str(teacher_dir)},
        student=dict(STUDENT),
        epochs=3,
        out=out,
        **kw,
    )


def test_distill_reports_set_metrics_and_predicts_sets(
    toy_jsonl: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    result = _distill(toy_jsonl, tiny_teacher_dir, tmp_path / "run")
    report = result.report
    assert report["multi_label"] and report["label_names"] == ["happy", "numbers", "sad"]
    for role in ("teacher", "student"):
        entry = report[role]
        assert {"micro_f1", "macro_f1", "subset_accuracy"} <= set(entry)
        assert len(entry["thresholds"]) == 3
    assert result.recipe.train.resolved()["objectives"] == [{"kind": "bce", "weight": 1.0}]
    log = report["training"]["thresholds"]
    assert (
        log["chosen_on"] == "held-out transfer" and log["values"] == report["student"]["thresholds"]
    )
    assert "micro-F1" in (tmp_path / "run" / "report.md").read_text()
    meta = json.loads((tmp_path / "run" / "student" / "student.json").read_text())
    assert meta["multi_label"] and meta["thresholds"] == log["values"]

    texts = ["great 3 the film", "awful dull plot"]
    sets = result.predict_labels(texts)
    probs = result.predict_proba(texts)
    assert not np.allclose(probs.sum(1), 1.0)
    for row, chosen in zip(probs, sets):
        assert chosen == [n for n, p, t in zip(result.label_names, row, log["values"]) if p >= t]
    with pytest.raises(ValueError, match="use predict_labels"):
        result.predict(texts)

    again = _distill(toy_jsonl, tiny_teacher_dir, tmp_path / "run")  # resumes: all skipped
    assert set(again.report["stages"].values()) == {"skipped"}
    assert again.student.thresholds == log["values"]


def test_export_predictor_and_server_answer_label_sets(
    toy_jsonl: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from tinystudent.export import export_student
    from tinystudent.inference import Predictor
    from tinystudent.serve.app import create_app

    result = _distill(toy_jsonl, tiny_teacher_dir, tmp_path / "run")
    out = export_student(tmp_path / "run", int8=True, measure=False)
    card = json.loads((out / "card.json").read_text())
    assert {"micro_f1", "subset_accuracy", "agreement_with_fp32"} <= set(
        card["metrics"]["ONNX int8"]
    )

    predictor = Predictor.load(out, "fp32")
    assert predictor.thresholds == result.student.thresholds
    texts = ["great 3 the film", "awful dull plot", "the story 7 was"]
    preds = predictor.predict(texts)
    assert [list(p.labels) for p in preds] == result.predict_labels(texts)
    np.testing.assert_allclose(
        [list(p.probs.values()) for p in preds], result.predict_proba(texts), atol=1e-4
    )

    with TestClient(create_app(predictor)) as client:
        body = client.post("/predict", json={"texts": texts}).json()
        assert [p["labels"] for p in body["predictions"]] == result.predict_labels(texts)
        assert set(body["predictions"][0]["probs"]) == set(result.label_names)
        meta = client.get("/metadata").json()
        assert meta["multi_label"] and meta["thresholds"] == predictor.thresholds


def test_cli_run_and_predict(
    toy_jsonl: Path, tiny_teacher_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from tinystudent.cli import main

    recipe = {
        "name": "toy-ml",
        "data": {
            "dataset": str(toy_jsonl),
            "multi_label": True,
            "label_column": "labels",
            "k": 6,
            "test_size": 40,
        },
        "teacher": {"kind": "frozen", "model": str(tiny_teacher_dir)},
        "student": STUDENT,
        "train": {"epochs": 2},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["--torch-threads", "1", "run", str(path), "--out", str(tmp_path / "r")]) == 0
    assert "subset acc." in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "r"), "great 3 film", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert isinstance(line["labels"], list) and set(line["probs"]) == {"happy", "numbers", "sad"}


def _recipe(**sections: Any) -> Recipe:
    base: dict[str, Any] = {
        "data": {"dataset": "x.jsonl", "multi_label": True},
        "teacher": {"kind": "frozen"},
    }
    base.update(sections)
    return parse_recipe(base)


def test_recipe_refuses_what_multi_label_cannot_use() -> None:
    assert [o.kind for o in _recipe().train.resolved_objectives()] == ["bce"]
    with pytest.raises(
        RecipeError, match="teacher.kind: finetune cannot label multi-label data, use kind: frozen"
    ):
        _recipe(teacher={"model": "minilm-l6"})
    with pytest.raises(RecipeError, match="teacher.kind: llm cannot label"):
        _recipe(teacher={"kind": "llm"})
    with pytest.raises(RecipeError, match=r"\['kd'\] assume one label per text"):
        _recipe(train={"objectives": [{"kind": "kd"}, {"kind": "bce"}]})
    with pytest.raises(RecipeError, match="single-label"):
        _recipe(train={"alpha": 0.5})
    with pytest.raises(RecipeError, match="bce needs data.multi_label: true"):
        parse_recipe({"train": {"objectives": [{"kind": "bce"}]}})
    with pytest.raises(RecipeError, match="label_separator: only read with multi_label"):
        parse_recipe({"data": {"label_separator": "|"}})


def test_single_label_stage_hashes_are_unchanged() -> None:
    plain = Recipe()
    spelled = parse_recipe({"data": {"multi_label": False, "label_separator": None}})
    assert plain.section_hash("data") == spelled.section_hash("data")
    assert plain.section_hash("data") != _recipe().section_hash("data")
