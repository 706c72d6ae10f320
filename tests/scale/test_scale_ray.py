"""Ray labeling: same probabilities as one process, one shared cache, resume after a crash.

One local Ray instance (2 CPUs, no dashboard) serves the whole module: starting Ray costs
~10 s, so every test here reuses it.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'tinystudent[ray]'")

from tests.conftest import toy_rows  # noqa: E402
from tinystudent.errors import TinyStudentError  # noqa: E402
from tinystudent.label import SoftLabelCache, label_texts  # noqa: E402
from tinystudent.scale import label_texts_ray, map_batches_actors, ray_label  # noqa: E402
from tinystudent.seed import seed_everything  # noqa: E402
from tinystudent.teachers import EncoderTeacher, EncoderTeacherConfig  # noqa: E402

TEXTS = [t for t, _ in toy_rows(48)]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def saved_teacher(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved EncoderTeacher (random head) around the tiny BERT: what Ray actors load."""
    seed_everything(0)
    cfg = EncoderTeacherConfig(model=str(tiny_teacher_dir), predict_batch_size=8)
    out = tmp_path_factory.mktemp("saved_teacher")
    EncoderTeacher.from_pretrained(["neg", "pos"], cfg).save(out)
    return out


def test_actor_pool_maps_every_batch_once() -> None:
    # A stdlib factory, so the actors need nothing from this test module: each batch reversed.
    factory = functools.partial(operator.itemgetter, slice(None, None, -1))
    items = list(range(23))
    seen: dict[int, Any] = {}
    for offset, batch, result in map_batches_actors(factory, items, 3, 5):
        assert batch == items[offset : offset + 5] and result == batch[::-1]
        seen[offset] = result
    assert sorted(seen) == [0, 5, 10, 15, 20]
    assert list(map_batches_actors(factory, [], 2, 5)) == []


def test_same_probs_and_cache_both_ways(saved_teacher: Path, tmp_path: Path) -> None:
    teacher = EncoderTeacher.load(saved_teacher)
    texts = TEXTS + TEXTS[:5]  # duplicates are labelled once and returned in place
    single, s1 = label_texts(teacher, texts, tmp_path / "single", shard_size=16)
    on_ray, s2 = label_texts_ray(
        saved_teacher, texts, tmp_path / "ray", num_workers=2, batch_size=8, shard_size=16
    )
    assert (s2.total, s2.hits, s2.computed) == (53, 0, 48)
    # Both label shortest first, 8 at a time; only the order of equal-length texts (a set's
    # in label_texts) can differ, changing padding partners: float rounding at most.
    np.testing.assert_allclose(on_ray, single, rtol=0, atol=1e-6)
    assert len(list((tmp_path / "ray" / teacher.fingerprint).glob("shard-*"))) == 3

    # Ray reads what the single process wrote: nothing is sent to any actor.
    again, s3 = label_texts_ray(saved_teacher, texts, tmp_path / "single", 2, 8)
    assert (s3.hits, s3.computed) == (53, 0)
    np.testing.assert_array_equal(again, single)
    # ... and the single process reads what Ray wrote, computing only the new texts.
    more = [f"a very boring film {i}" for i in range(3)]
    both, s4 = label_texts(teacher, texts + more, tmp_path / "ray")
    assert (s4.hits, s4.computed) == (53, 3)
    np.testing.assert_array_equal(both[:53], on_ray)  # Ray's own rows, read back bit for bit


def test_resume_after_interrupted_run(
    saved_teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put = SoftLabelCache.put
    calls: list[int] = []

    def crash_after_first_shard(self: SoftLabelCache, texts: list[str], probs: Any) -> None:
        if calls:
            raise KeyboardInterrupt("simulated crash of the driver")
        calls.append(len(texts))
        put(self, texts, probs)

    monkeypatch.setattr(SoftLabelCache, "put", crash_after_first_shard)
    with pytest.raises(KeyboardInterrupt):
        label_texts_ray(saved_teacher, TEXTS, tmp_path, num_workers=1, batch_size=8, shard_size=16)
    monkeypatch.undo()
    assert calls == [16]  # one whole shard (two batches of 8) survived the crash

    probs, stats = label_texts_ray(saved_teacher, TEXTS, tmp_path, num_workers=1, batch_size=8)
    assert (stats.hits, stats.computed) == (16, 32)
    reference = EncoderTeacher.load(saved_teacher).predict_proba(TEXTS)
    np.testing.assert_allclose(probs, reference, atol=1e-6)


def test_refuses_results_from_another_teacher(
    saved_teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose copy of the teacher differs: caught at the first result, nothing cached.
    The actors are faked (this is the driver's check; starting real ones costs ~10 s)."""

    def other_teacher(factory: Any, items: list[str], *args: Any, **kwargs: Any) -> Iterator:
        yield 0, list(items), ("0" * 32, np.full((len(items), 2), 0.5, np.float32))

    monkeypatch.setattr(ray_label, "map_batches_actors", other_teacher)
    with pytest.raises(TinyStudentError, match="fingerprint"):
        label_texts_ray(saved_teacher, TEXTS[:4], tmp_path, num_workers=1, batch_size=4)
    assert not list(tmp_path.rglob("shard-*"))


def test_generation_uses_the_same_actor_pool(tmp_path: Path) -> None:
    """`generate_on_ray` writes the texts one process writes (greedy and sampled alike)."""
    import torch

    from tests.generate.conftest import CHAT, CHAT_TEMPLATE, FILL, NEG, POS
    from tests.tiny_lm import save_tiny_llama, word_level
    from tinystudent.generate.generator import TransformersGenerator
    from tinystudent.generate.pool import generate_on_ray

    model = save_tiny_llama(
        tmp_path / "lm",
        word_level(POS + NEG + FILL + CHAT),
        max_positions=128,
        chat_template=CHAT_TEMPLATE,
    )
    prompts = [" ".join(POS[: 1 + i % 3]) for i in range(10)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each actor runs: sampling is then the same to the bit
    try:
        local = TransformersGenerator.from_pretrained(str(model), batch_size=3)
        for temperature in (0.0, 1.0):
            want = local.generate(prompts, 6, temperature, 0.95, seed=7)
            got = generate_on_ray(
                prompts,
                2,
                model=str(model),
                batch_size=3,
                max_new_tokens=6,
                temperature=temperature,
                seed=7,
            )
            assert got == want and len(got) == len(prompts)
        assert any(t.strip() for t in want)  # the tiny model writes something
    finally:
        torch.set_num_threads(threads)
