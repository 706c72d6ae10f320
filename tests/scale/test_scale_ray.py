"""Ray labeling: same probabilities as one process, one shared cache, resume after a crash.

One local Ray instance (2 CPUs, no dashboard) serves the whole module: starting Ray costs
~10 s, so every test here reuses it.
"""

from __future__ import annotations

import dataclasses
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
    from tinystudent.generate import generate_on_ray
    from tinystudent.generate.generator import TransformersGenerator

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


# -- several teachers, amalgamated -------------------------------------------------------------
def amalgam_recipe(toy_csv: Path, encoder: Path, method: str, **sections: Any) -> Any:
    """A frozen tiny encoder and a TF-IDF teacher, amalgamated; a tiny bag student."""
    from tinystudent.recipe import parse_recipe

    return parse_recipe(
        {
            "name": "toy-amalgam-ray",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teachers": [
                {"kind": "frozen", "model": str(encoder)},
                {"kind": "tfidf", "temperature": "auto"},
            ],
            "amalgamation": {"method": method},
            "student": {"kind": "bag", "embed_dim": 16, "init": "random", "head_hidden": 0},
            "train": {"epochs": 2, "batch_size": 32},
            **sections,
        }
    )


def cached_soft_labels(recipe: Any, root: Path) -> tuple[np.ndarray, Any]:
    """The run's soft labels as its cache holds them under the amalgamated teacher the driver
    rebuilds from the run directory (nothing is recomputed: the stages all skip)."""
    from tinystudent.pipeline import RunDir, stage_data, stage_teachers, stage_transfer

    rd = RunDir(root, recipe)
    split = stage_data(rd)
    _, teacher = stage_teachers(rd, split)
    transfer, _, _ = stage_transfer(rd, split)
    probs, stats = label_texts(teacher, transfer + split.test_texts, rd.cache)
    assert stats.computed == 0  # every row was in the cache, under the driver's fingerprint
    return probs, teacher


@pytest.mark.parametrize("method", ["average", "accuracy"])
def test_amalgamated_teacher_labels_the_same_on_ray(
    method: str, toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    """`label_backend: ray` with several teachers: each actor rebuilds the amalgamation from
    the saved members (accuracy weights passed, not refitted); same cache, labels, student."""
    from safetensors.numpy import load_file

    from tinystudent.pipeline import run

    local = amalgam_recipe(toy_csv, tiny_teacher_dir, method)
    on_ray = amalgam_recipe(
        toy_csv, tiny_teacher_dir, method, scale={"label_backend": "ray", "label_workers": 2}
    )
    one = run(local, tmp_path / "local")
    two = run(on_ray, tmp_path / "ray")
    assert two["labeling"]["transfer"]["computed"] == (
        one["labeling"]["transfer"]["computed"] + one["labeling"]["test"]["computed"]
    )
    want, teacher = cached_soft_labels(local, tmp_path / "local")
    got, ray_teacher = cached_soft_labels(on_ray, tmp_path / "ray")
    assert ray_teacher.fingerprint == teacher.fingerprint
    if method == "accuracy":  # fitted weights, not the default 1s: they travelled to the actors
        assert not np.allclose(teacher.weights, 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    a = load_file(str(tmp_path / "local/student/student.safetensors"))
    b = load_file(str(tmp_path / "ray/student/student.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-6, err_msg=name)
    assert two["student"]["accuracy"] == pytest.approx(one["student"]["accuracy"])
    assert two["teacher"]["accuracy"] == pytest.approx(one["teacher"]["accuracy"])


@pytest.fixture(scope="module")
def saved_members(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A frozen tiny encoder and a TF-IDF teacher, fitted on the toy reviews and saved."""
    from tinystudent.teachers.frozen import FrozenEncoderTeacher, FrozenTeacherConfig
    from tinystudent.teachers.lexical import TfidfTeacher, TfidfTeacherConfig

    root = tmp_path_factory.mktemp("members")
    rows = toy_rows(32, seed=1)
    texts, labels = [t for t, _ in rows], [int(y == "pos") for _, y in rows]
    frozen = FrozenEncoderTeacher.from_config(
        ["neg", "pos"], FrozenTeacherConfig(model=str(tiny_teacher_dir)), root / "embeddings"
    )
    tfidf = TfidfTeacher.from_config(["neg", "pos"], TfidfTeacherConfig())
    for i, teacher in enumerate((frozen, tfidf)):
        teacher.fit(texts, labels, seed=0)
        teacher.save(root / str(i))
    return [root / "0", root / "1"]


def test_uncertainty_amalgam_same_mc_passes_on_ray(
    saved_members: list[Path], tmp_path: Path
) -> None:
    """The MC-dropout passes (mc_samples, seed) travel with the amalgamation. A frozen
    member's dropout masks are drawn per call, so a text's passes depend on the texts it is
    batched with: with the batch and shard sizes equal (and the same cached features) Ray
    forms the single process's batches and the labels are the same to the bit."""
    import shutil

    from tinystudent.teachers.amalgamate import AmalgamatedTeacher, AmalgamationSpec
    from tinystudent.teachers.portable import SavedAmalgam
    from tinystudent.teachers.registry import load_saved

    spec = AmalgamationSpec(method="uncertainty", mc_samples=4, seed=3)
    teacher = AmalgamatedTeacher(
        [load_saved(d, tmp_path / "local") for d in saved_members], spec, ["enc", "tfidf"]
    )
    single, _ = label_texts(teacher, TEXTS, tmp_path / "local", shard_size=8)
    shutil.copytree(tmp_path / "local" / "embeddings", tmp_path / "ray" / "embeddings")
    source = SavedAmalgam.of(teacher, saved_members)
    on_ray, stats = label_texts_ray(source, TEXTS, tmp_path / "ray", 2, 8, shard_size=8)
    assert stats.computed == len(TEXTS)
    np.testing.assert_array_equal(on_ray, single)
    averaged = AmalgamatedTeacher(teacher.teachers, AmalgamationSpec(), teacher.names)
    assert not np.allclose(averaged.predict_proba(TEXTS), single)  # the passes mattered
    assert (tmp_path / "ray" / SoftLabelCache(tmp_path, teacher.fingerprint, 2).dir.name).is_dir()


def test_refuses_an_amalgam_built_otherwise(
    saved_members: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers rebuild the amalgamation; another fingerprint (other members, other weights)
    is refused before anything is cached. Fake actors build it in this process."""
    from tinystudent.teachers.amalgamate import AmalgamatedTeacher
    from tinystudent.teachers.portable import SavedAmalgam
    from tinystudent.teachers.registry import load_saved

    teacher = AmalgamatedTeacher([load_saved(d, tmp_path) for d in saved_members])
    teacher.weights = np.array([0.9, 0.4])  # as `fit` with method accuracy would set them
    source = SavedAmalgam.of(teacher, saved_members)
    assert source.open(str(tmp_path), "cpu").fingerprint == teacher.fingerprint
    stale = dataclasses.replace(source, weights=(1.0, 1.0))  # a worker told other weights

    def stale_pool(factory: Any, items: list[str], *args: Any, **kwargs: Any) -> Iterator:
        yield 0, list(items), ray_label._TeacherLabeler(stale, str(tmp_path), "cpu")(list(items))

    monkeypatch.setattr(ray_label, "map_batches_actors", stale_pool)
    with pytest.raises(TinyStudentError, match="amalgamated these teachers"):
        label_texts_ray(source, TEXTS[:4], tmp_path / "c", num_workers=1, batch_size=4)
    assert not list((tmp_path / "c").rglob("shard-*"))
    with pytest.raises(TinyStudentError, match="saved teacher"):
        SavedAmalgam.of(teacher, [saved_members[0], tmp_path / "nothing"])
