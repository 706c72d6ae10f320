"""The SetFit and model2vec-classifier peers in `tinystudent bench --quick`, on toy data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tinystudent.bench import PROTOCOLS, parse_bench
from tinystudent.errors import RecipeError

TINY_BAG = {"kind": "bag", "embed_dim": 8, "head_hidden": 0, "init": "random"}


def _spec(toy_csv: Path, body: Path, cache: Path) -> dict:
    model = str(body)
    m2v = {"kind": "model2vec-clf", "teacher": model, "pca_dims": 8, "hidden_dim": 16}
    return {
        "name": "peers",
        "data": {"dataset": str(toy_csv), "test_size": 40},
        "ks": [8],
        "seeds": [0],
        "teachers": {"enc": {"kind": "frozen", "model": model, "c": 1.0}},
        "students": {"bag": TINY_BAG},
        "gold_students": False,
        "baselines": {
            "setfit": {"kind": "setfit", "model": model, "num_iterations": 2, "max_length": 16},
            "model2vec-clf": m2v,
            "model2vec-clf (teacher labels)": {**m2v, "train_on": "teacher"},
        },
        "train": {"batch_size": 32},
        "cache_dir": str(cache),
    }


def test_peers_run_in_the_bench_and_are_cached(
    toy_csv: Path,
    tiny_teacher_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("setfit")
    pytest.importorskip("model2vec")
    from tinystudent.cli import main

    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(_spec(toy_csv, tiny_teacher_dir, tmp_path / "cache")))
    assert main(["bench", str(path), "--quick", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "| setfit |" in out and "| model2vec-clf (teacher labels) |" in out
    doc = json.loads((tmp_path / "a" / "peers.json").read_text())
    rows = {r["system"]: r for r in doc["runs"]}
    for name in ("setfit", "model2vec-clf", "model2vec-clf (teacher labels)"):
        assert 0.0 <= rows[name]["accuracy"] <= 1.0, name
        entry = doc["systems"][name]
        assert entry["params"] > 0 and entry["size_bytes"] > 0 and "threads=1" in entry["speed"]
    assert rows["setfit"]["trained_on"] == "gold" and rows["setfit"]["train_texts"] == 16
    taught = rows["model2vec-clf (teacher labels)"]
    transfer = doc["dataset"]["transfer_size"]
    assert taught["trained_on"] == "teacher" and taught["train_texts"] == transfer > 16
    assert taught["reference_teacher"] == "enc"
    peers = list((tmp_path / "cache" / "peers").iterdir())
    assert len(peers) == 3 and not list((tmp_path / "cache").rglob("*.pkl"))

    # A rerun (another out dir, same cache) loads the trained peers instead of training them.
    from model2vec.train import StaticModelForClassification

    from tinystudent.teachers import setfit as setfit_module

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached peer was trained again")

    monkeypatch.setattr(setfit_module, "_contrastive", no_training)
    monkeypatch.setattr(StaticModelForClassification, "fit", no_training)
    assert main(["bench", str(path), "--quick", "--out", str(tmp_path / "b")]) == 0
    runs = json.loads((tmp_path / "b" / "peers.json").read_text())["runs"]
    again = {r["system"]: r for r in runs}
    for name in ("setfit", "model2vec-clf", "model2vec-clf (teacher labels)"):
        assert again[name]["accuracy"] == rows[name]["accuracy"], name


def test_train_on_is_checked_and_rt_lists_the_peers() -> None:
    with pytest.raises(RecipeError, match="train_on"):
        parse_bench({"baselines": {"x": {"kind": "model2vec-clf", "train_on": "pool"}}})
    rt = PROTOCOLS["rt"]()
    assert {"setfit", "model2vec-clf", "model2vec-clf (teacher labels)"} <= set(rt.baselines)
    assert rt.baselines["setfit (mpnet)"].options["model"] == "mpnet-base"
    assert rt.baselines["setfit-distilled"].options["teacher"] == "mpnet-base"
    assert rt.baselines["model2vec-clf (teacher labels)"].train_on == "teacher"
    assert "train_on" not in rt.baselines["model2vec-clf (teacher labels)"].options


def _tiny_body(teacher_dir: Path, out: Path) -> Path:
    """A 1-layer, 16-wide random BERT on the toy vocabulary: the student body to distil into."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    out.mkdir()
    for f in teacher_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            shutil.copy2(f, out / f.name)
    torch.manual_seed(1)
    cfg = BertConfig(
        vocab_size=BertConfig.from_pretrained(teacher_dir).vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(out, safe_serialization=True)
    return out


def test_setfit_distilled_runs_in_the_bench_on_the_pool_and_is_cached(
    toy_csv: Path,
    tiny_teacher_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setfit = pytest.importorskip("setfit")
    from tinystudent.cli import main

    student = _tiny_body(tiny_teacher_dir, tmp_path / "student")
    teacher = str(tiny_teacher_dir)
    spec = _spec(toy_csv, tiny_teacher_dir, tmp_path / "cache")
    distilled = {"kind": "setfit-distilled", "teacher": teacher, "teacher_iterations": 2}
    distilled.update(student=str(student), n_unlabeled=50, max_steps=6, max_length=16)
    spec["baselines"] = {"setfit": spec["baselines"]["setfit"], "setfit-distilled": distilled}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["bench", str(path), "--quick", "--out", str(tmp_path / "a")]) == 0
    assert "| setfit-distilled |" in capsys.readouterr().out
    doc = json.loads((tmp_path / "a" / "peers.json").read_text())
    rows = {(r["system"], r["seed"]): r for r in doc["runs"]}
    row = rows[("setfit-distilled", 0)]
    assert 0.0 <= row["accuracy"] <= 1.0
    assert row["trained_on"] == "gold+pool" and row["train_texts"] == 16 + 50
    entry = doc["systems"]["setfit-distilled"]
    assert entry["params"] < doc["systems"]["setfit"]["params"]  # the smaller body
    assert entry["size_bytes"] > 0 and "threads=1" in entry["speed"]
    # the setfit teacher is the setfit row's (trained once), plus the distilled peer
    kinds = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache" / "peers").iterdir())
    assert kinds == ["setfit", "setfit-distilled"], kinds
    assert not list((tmp_path / "cache").rglob("*.pkl"))

    # A rerun loads the distilled peers instead of distilling again.
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached distilled peer was trained again")

    monkeypatch.setattr(setfit.DistillationTrainer, "train", no_training)
    assert main(["bench", str(path), "--quick", "--out", str(tmp_path / "b")]) == 0
    runs = json.loads((tmp_path / "b" / "peers.json").read_text())["runs"]
    again = {(r["system"], r["seed"]): r for r in runs}
    assert again[("setfit-distilled", 0)]["accuracy"] == row["accuracy"]
