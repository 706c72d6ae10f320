"""Property: the pQRNN hash projection is a pure function of the text, and the torch-free
runtime's preprocessing (built from the exported JSON spec) equals the student's own.

The vocabulary students' ids get the same runtime check, since they share the code path.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.tiny_students import TINY
from tinystudent.export.onnx_export import preprocess_spec
from tinystudent.inference.preprocess import HashProjection, Preprocessor
from tinystudent.students import build_student

WORDS = st.sampled_from(["good", "BAD", "film", "naïve", "café", "😀", "!", "?", "x" * 30])
TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(WORDS, max_size=50).map(" ".join),  # repeats and more tokens than max_tokens
)
TEXTS = st.lists(TEXT, min_size=1, max_size=6)

PQRNN = build_student("pqrnn", TINY["pqrnn"], ["neg", "pos"])
BAG = build_student("bag", TINY["bag"], ["neg", "pos"])
BAG.fit_preprocessing(["good film", "bad film", "naïve café 😀 !"])


def runtime(student: object) -> Preprocessor:
    """What `Predictor` builds from an export directory's preprocess.json."""
    spec, files = preprocess_spec(student)  # type: ignore[arg-type]
    assert not files
    return Preprocessor(json.loads(json.dumps(spec)), ["features", "mask"], ".")


@settings(max_examples=100, deadline=None)
@given(TEXTS, st.integers(0, 2**32 - 1))
@example(["0:1\x1b", "0"], 0)  # a full memo once raised KeyError on a token seen before
def test_same_text_same_features(texts: list[str], seed: int) -> None:
    """Independent of the batch, of what was hashed before (the memo) and of the instance."""
    fresh = HashProjection(64, seed)
    warm = HashProjection(64, seed, memo_size=3)  # clears its memo all the time
    warm.batch(["something else entirely", *texts[::-1]])
    proj, mask = fresh.batch(texts, max_tokens=40)
    proj2, mask2 = warm.batch(texts, max_tokens=40)
    np.testing.assert_array_equal(proj, proj2)
    np.testing.assert_array_equal(mask, mask2)
    for i, t in enumerate(texts):  # each text alone: its own rows, padding stays zero
        alone, alone_mask = fresh.batch([t], max_tokens=40)
        n = alone.shape[1]
        np.testing.assert_array_equal(proj[i, :n], alone[0])
        np.testing.assert_array_equal(mask[i, :n], alone_mask[0])
        assert not proj[i, n:].any() and not mask[i, n:].any()
    assert set(np.unique(proj)) <= {-1.0, 0.0, 1.0}


@settings(max_examples=100, deadline=None)
@given(TEXTS)
def test_training_and_runtime_preprocessing_agree(texts: list[str]) -> None:
    for student in (PQRNN, BAG):
        train_side = student.featurize(texts)
        served = runtime(student)(texts)
        for name, served_array in zip(train_side, served.values()):
            np.testing.assert_array_equal(train_side[name].numpy(), served_array)
