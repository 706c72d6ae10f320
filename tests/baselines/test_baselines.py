"""Each baseline learns a clearly separable toy task and honours the shared contract."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tinystudent.baselines import BASELINES, Baseline, NotFittedError
from tinystudent.baselines.base import fit_logreg, full_proba, normalise_rows
from tinystudent.baselines.fasttext_baseline import FastTextClassifier, normalise_text
from tinystudent.baselines.model2vec_baseline import Model2VecLogReg, distill_static_model
from tinystudent.baselines.tfidf import TfidfLogReg
from tinystudent.errors import AssetMissingError, DataError

POSITIVE = ["good", "great", "wonderful", "excellent", "lovely", "brilliant"]
NEGATIVE = ["bad", "awful", "terrible", "horrible", "poor", "boring"]
FILLER = ["the", "movie", "film", "was", "a", "story", "plot", "acting", "really", "quite"]


def synthetic(n: int, seed: int) -> tuple[list[str], list[int]]:
    """n short texts, half per class: filler words plus two words only that class uses."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        words = rng.sample(FILLER, 3) + rng.sample(NEGATIVE if y else POSITIVE, 2)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(y)
    return texts, labels


TRAIN = synthetic(40, seed=0)
TEST = synthetic(40, seed=1)


def make_fast(name: str) -> Baseline:
    if name == "fasttext":
        pytest.importorskip("fasttext")
        return FastTextClassifier(seed=0)
    return TfidfLogReg()


@pytest.mark.parametrize("name", ["tfidf-lr", "fasttext"])
def test_learns_separable_words_and_keeps_the_contract(name: str) -> None:
    model = make_fast(name).fit(*TRAIN, n_classes=2)
    proba = model.predict_proba(TEST[0])
    assert proba.shape == (len(TEST[0]), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba >= 0).all()
    accuracy = float((model.predict(TEST[0]) == np.array(TEST[1])).mean())
    assert accuracy >= 0.9, accuracy
    assert model.num_params() > 0
    assert model.size_bytes() > 0


@pytest.mark.parametrize("name", ["tfidf-lr", "fasttext"])
def test_absent_class_still_gets_a_column(name: str) -> None:
    proba = make_fast(name).fit(*TRAIN, n_classes=3).predict_proba(TEST[0][:5])
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba[:, 2], 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize("name", ["tfidf-lr", "fasttext"])
def test_predict_before_fit_is_a_clear_error(name: str) -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        make_fast(name).predict_proba(["x"])


@pytest.mark.parametrize(
    ("texts", "labels", "n_classes", "message"),
    [
        (["a", "b"], [0], 2, "2 texts but 1 labels"),
        (["a", "b"], [0, 0], 2, "single class"),
        (["a", "b"], [0, 2], 2, "outside 0..1"),
        ([], [], 2, "no training texts"),
    ],
)
def test_bad_fit_inputs_are_rejected(
    texts: list[str], labels: list[int], n_classes: int, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        TfidfLogReg().fit(texts, labels, n_classes)


def test_registry_names_every_baseline() -> None:
    expected = {"tfidf-lr", "fasttext", "model2vec-lr", "setfit", "setfit-distilled"}
    assert set(BASELINES) == expected | {"model2vec-clf"}
    for name, cls in BASELINES.items():
        assert issubclass(cls, Baseline)
        assert cls.name == name


def test_fasttext_is_deterministic_and_takes_awkward_text() -> None:
    pytest.importorskip("fasttext")
    texts = ["a line\nwith a break", "", "   ", "GREAT!!!"]
    first = FastTextClassifier(seed=3).fit(*TRAIN, n_classes=2).predict_proba(texts)
    second = FastTextClassifier(seed=3).fit(*TRAIN, n_classes=2).predict_proba(texts)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-9)
    assert normalise_text("Great, fun!\nYes") == "great , fun ! yes"


def test_missing_optional_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fasttext", None)  # makes `import fasttext` fail
    with pytest.raises(ImportError, match=re.escape("tinystudent[bench]")):
        FastTextClassifier().fit(*TRAIN, n_classes=2)
    monkeypatch.setitem(sys.modules, "model2vec", None)
    with pytest.raises(ImportError, match=re.escape("tinystudent[bench]")):
        Model2VecLogReg(model_dir="/nonexistent").fit(*TRAIN, n_classes=2)


def test_probability_helpers() -> None:
    spread = full_proba(np.array([[0.25, 0.75]]), np.array([0, 2]), 3)
    np.testing.assert_allclose(spread, [[0.25, 0.0, 0.75]])
    np.testing.assert_allclose(normalise_rows(np.zeros((1, 4))), [[0.25] * 4])


def test_logreg_uses_a_fixed_c_when_given_and_cv_otherwise() -> None:
    x = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [1.2]])
    y = [0, 0, 0, 1, 1, 1]
    assert fit_logreg(x, y, c=0.5, seed=0).C == 0.5
    chosen = fit_logreg(x, y, c=None, seed=0).C
    assert 0.01 <= chosen <= 1000


@pytest.mark.integration
def test_model2vec_distils_the_teacher_and_caches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("model2vec")
    pytest.importorskip("skeletoken")
    # Keep only the toy task's words (and BERT's specials): distilling 20 tokens takes
    # seconds, the full 30k-token vocabulary ~40 s.
    keep = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *POSITIVE, *NEGATIVE, *FILLER]
    keep_only = r"(?!(?:" + "|".join(re.escape(w) for w in keep) + r")\Z)"
    kwargs = {"cache_dir": tmp_path, "pca_dims": 16, "token_remove_pattern": keep_only}
    try:
        model = Model2VecLogReg(**kwargs).fit(*TRAIN, n_classes=2)  # type: ignore[arg-type]
    except AssetMissingError as e:
        pytest.skip(str(e))
    proba = model.predict_proba(TEST[0])
    assert proba.shape == (len(TEST[0]), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    accuracy = float((proba.argmax(axis=1) == np.array(TEST[1])).mean())
    assert accuracy >= 0.9, accuracy
    assert model.num_params() > 0
    assert model.size_bytes() > 0

    cached = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(cached) == 1 and (cached[0] / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    # A second build with the same recipe loads the cache instead of distilling again.
    import model2vec.distill

    def no_distill(*args: object, **kwargs: object) -> None:
        raise AssertionError("distilled again despite the cache")

    monkeypatch.setattr(model2vec.distill, "distill", no_distill)
    again = distill_static_model("minilm-l6", tmp_path, 16, token_remove_pattern=keep_only)
    assert again.embedding.shape == model.static_model().embedding.shape
    assert len(list(tmp_path.iterdir())) == 1
    # A prebuilt folder can be passed directly.
    prebuilt = Model2VecLogReg(model_dir=cached[0]).fit(*TRAIN, n_classes=2)
    np.testing.assert_allclose(prebuilt.predict_proba(TEST[0]), proba, atol=1e-6)
