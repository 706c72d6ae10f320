"""build_transfer_set: sources, leak guard by default, shards that resume, the time limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tinystudent.data.split import Split
from tinystudent.generate.run import GenerationConfig, build_transfer_set

NEW = [f"a fresh new review number {i} about some charming film and its actors" for i in range(40)]


def _by_source(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for text, source in pairs:
        out.setdefault(source, []).append(text)
    return out


def _cfg(**kw) -> GenerationConfig:
    base = {"enabled": True, "strategy": "prompt", "num_examples": 6, "batch_size": 2}
    return GenerationConfig(**{**base, **kw})


def test_config_is_strict_and_guards_by_default():
    cfg = GenerationConfig()
    assert cfg.leak_guard is True and cfg.enabled is False
    with pytest.raises(ValidationError, match="extra"):
        GenerationConfig(num_exmaples=5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="max_words"):
        GenerationConfig(min_words=10, max_words=5)
    with pytest.raises(ValidationError):
        GenerationConfig(augment=["shuffle"])  # type: ignore[list-item]


def test_disabled_returns_the_pool_without_test_leaks(toy_split: Split, tmp_path: Path):
    toy_split.pool = toy_split.pool + [toy_split.test_texts[0], toy_split.train_texts[0]]
    pairs = build_transfer_set(toy_split, GenerationConfig(), tmp_path)
    assert {s for _, s in pairs} == {"pool"}
    texts = [t for t, _ in pairs]
    assert toy_split.test_texts[0] not in texts  # leak guard on the pool too
    assert toy_split.train_texts[0] not in texts  # gold stays with the caller
    assert len(texts) == len(toy_split.pool) - 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pool"] == {"kept": len(texts), "test_leaks": 1}


def test_generated_texts_pass_the_leak_guard_and_dedup(
    toy_split: Split, tmp_path: Path, fake_generator_cls
):
    test_text = toy_split.test_texts[3]
    near_copy = test_text.replace("number", "no.")  # one token changed
    scripted = [test_text, NEW[0], near_copy, NEW[0], NEW[1], NEW[1] + " indeed", *NEW[2:]]
    fake = fake_generator_cls(scripted)
    pairs = build_transfer_set(toy_split, _cfg(), tmp_path, generator=fake)
    gen = _by_source(pairs)["generated"]
    assert gen == NEW[:6]
    assert test_text not in gen and near_copy not in gen
    summary = json.loads((tmp_path / "summary.json").read_text())["generated"]
    assert summary["dropped"]["test_leak"] == 2
    assert summary["dropped"]["duplicate"] == 1 and summary["dropped"]["near_duplicate"] == 1
    assert summary["stopped"] == "done"
    # each shard holds what its batch kept, with the class the prompt asked for
    rows = [json.loads(x) for p in sorted(tmp_path.glob("shard-*.jsonl")) for x in p.open()]
    assert [r["text"] for r in rows] == NEW[:6]
    assert {r["intended"] for r in rows} <= {"pos", "neg"}


def test_shards_resume_and_a_second_call_generates_nothing(
    toy_split: Split, tmp_path: Path, fake_generator_cls
):
    fake = fake_generator_cls(NEW)
    first = build_transfer_set(toy_split, _cfg(), tmp_path, generator=fake)
    n_shards = len(list(tmp_path.glob("shard-*.jsonl")))
    assert n_shards == 3 and fake.served == 6

    again = fake_generator_cls(NEW)
    second = build_transfer_set(toy_split, _cfg(), tmp_path, generator=again)
    assert second == first
    assert again.calls == []  # nothing new was generated
    assert json.loads((tmp_path / "summary.json").read_text())["generated"]["resumed"] == 6

    # a larger budget continues after the last shard instead of starting over
    more = fake_generator_cls(NEW[6:])
    third = build_transfer_set(toy_split, _cfg(num_examples=10), tmp_path, generator=more)
    assert _by_source(third)["generated"] == NEW[:10]
    assert more.served == 4 and len(list(tmp_path.glob("shard-*.jsonl"))) == 5


def test_an_interrupted_run_keeps_finished_shards(
    toy_split: Split, tmp_path: Path, fake_generator_cls
):
    class Crashing(fake_generator_cls):  # type: ignore[misc, valid-type]
        def generate(self, prompts, *args, **kwargs):
            if len(self.calls) == 2:
                raise KeyboardInterrupt
            return super().generate(prompts, *args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        build_transfer_set(toy_split, _cfg(), tmp_path, generator=Crashing(NEW, name="fake"))
    assert len(list(tmp_path.glob("shard-*.jsonl"))) == 2
    resumed = fake_generator_cls(NEW[4:])
    pairs = build_transfer_set(toy_split, _cfg(), tmp_path, generator=resumed)
    assert _by_source(pairs)["generated"] == NEW[:6]
    assert resumed.served == 2


def test_changed_settings_drop_stale_shards(toy_split: Split, tmp_path: Path, fake_generator_cls):
    build_transfer_set(toy_split, _cfg(), tmp_path, generator=fake_generator_cls(NEW))
    other = fake_generator_cls(NEW[10:])
    pairs = build_transfer_set(toy_split, _cfg(temperature=0.5), tmp_path, generator=other)
    assert _by_source(pairs)["generated"] == NEW[10:16]
    assert other.served == 6


def test_time_limit_stops_cleanly(toy_split: Split, tmp_path: Path, fake_generator_cls):
    fake = fake_generator_cls(NEW)
    pairs = build_transfer_set(toy_split, _cfg(time_limit_s=1e-9), tmp_path, generator=fake)
    assert "generated" not in _by_source(pairs)
    assert json.loads((tmp_path / "summary.json").read_text())["generated"]["stopped"] == (
        "time_limit"
    )


def test_hopeless_generator_gives_up(toy_split: Split, tmp_path: Path, fake_generator_cls):
    fake = fake_generator_cls(["!!!"])  # never passes the filters
    cfg = _cfg(num_examples=4, max_batches_factor=2)
    pairs = build_transfer_set(toy_split, cfg, tmp_path, generator=fake)
    assert "generated" not in _by_source(pairs)
    assert fake.served == 8  # 2 x the 2 batches the budget needs, 2 texts each


def test_augmented_texts_are_new_and_not_leaks(toy_split: Split, tmp_path: Path):
    cfg = GenerationConfig(
        enabled=True, strategy="none", augment=["mask", "ngram"], augment_per_text=2, seed=3
    )
    pairs = build_transfer_set(toy_split, cfg, tmp_path)
    by = _by_source(pairs)
    aug = by["augmented"]
    assert aug and len(aug) <= 2 * (len(toy_split.pool) + len(toy_split.train_texts))
    known = set(by["pool"]) | set(toy_split.train_texts) | set(toy_split.test_texts)
    assert not known & set(aug)
    assert len(set(aug)) == len(aug)
    assert build_transfer_set(toy_split, cfg, tmp_path) == pairs  # seeded
    assert (tmp_path / "augmented.jsonl").exists()


def test_finetune_strategy_end_to_end_on_the_tiny_lm(
    toy_split: Split, tmp_path: Path, tiny_generator
):
    cfg = GenerationConfig(
        enabled=True,
        strategy="finetune",
        num_examples=3,
        batch_size=4,
        max_new_tokens=10,
        finetune_steps=3,
        finetune_batch_size=4,
        min_words=1,
        max_batches_factor=3,
        threads=1,
    )
    import torch

    torch.set_num_threads(2)
    pairs = build_transfer_set(toy_split, cfg, tmp_path, generator=tiny_generator)
    assert torch.get_num_threads() == 2  # `threads` applies while generating only
    summary = json.loads((tmp_path / "summary.json").read_text())["generated"]
    assert len(summary["finetune"]["losses"]) == 3
    assert summary["candidates"] >= 4 and list(tmp_path.glob("shard-*.jsonl"))
    gen = _by_source(pairs).get("generated", [])
    assert len(gen) <= 3
    assert not set(gen) & set(toy_split.test_texts)
