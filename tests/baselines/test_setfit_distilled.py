"""setfit-distilled's own checks: its input errors, and the MiniLM-L3 body it distils into."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tinystudent.baselines import BASELINES, SetFitDistilledPeer
from tinystudent.errors import DataError

GOLD = ["good film", "great acting", "bad plot", "dull story"]


def test_registered_and_asks_for_the_pool(tmp_path: Path) -> None:
    assert BASELINES["setfit-distilled"] is SetFitDistilledPeer
    assert SetFitDistilledPeer.uses_pool and SetFitDistilledPeer.content_cached
    peer = SetFitDistilledPeer(cache_dir=tmp_path)
    with pytest.raises(DataError, match="unlabeled texts; got 0"):
        peer.fit(GOLD, [1, 1, 0, 0], 2)
    peer.pool = GOLD + ["one more"]  # gold texts are not unlabeled ones
    with pytest.raises(DataError, match="got 1"):
        peer.fit(GOLD, [1, 1, 0, 0], 2)
    with pytest.raises(DataError, match="n_unlabeled"):
        SetFitDistilledPeer(n_unlabeled=1)


def test_unlabeled_sample_is_seeded_and_capped(tmp_path: Path) -> None:
    pool = [f"text {i}" for i in range(50)]
    a, b, c = (SetFitDistilledPeer(n_unlabeled=10, seed=s, cache_dir=tmp_path) for s in (0, 0, 1))
    for peer in (a, b, c):
        peer.pool = pool
    assert a.unlabeled(GOLD) == b.unlabeled(GOLD) != c.unlabeled(GOLD)
    assert len(a.unlabeled(GOLD)) == 10 and set(a.unlabeled(GOLD)) <= set(pool)


def test_clear_error_without_setfit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "setfit" else real(name, *a)
    )
    peer = SetFitDistilledPeer(cache_dir=tmp_path)
    peer.pool = ["another text", "and one more"]
    with pytest.raises(ImportError, match=r"needs the package 'setfit': pip install"):
        peer.fit(GOLD, [1, 1, 0, 0], 2)


@pytest.mark.integration
def test_minilm_l3_body_matches_onnx_runtime(tmp_path: Path) -> None:
    """The converted sentence-transformers folder embeds exactly as the shipped ONNX graph."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    st = pytest.importorskip("sentence_transformers")
    from tinystudent.baselines.st_body import minilm_l3_body
    from tinystudent.students.tiny_transformer import minilm_l3_onnx_path

    body = minilm_l3_body(tmp_path)
    assert minilm_l3_body(tmp_path) == body  # built once
    model = st.SentenceTransformer(str(body), device="cpu")
    texts = ["a gripping, beautifully shot film", "dull and far too long."]
    tok = model.tokenizer(texts, padding=True, return_tensors="np")
    session = ort.InferenceSession(str(minilm_l3_onnx_path()), providers=["CPUExecutionProvider"])
    feed = {k: tok[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    (pooled,) = session.run(["461"], feed)  # the mean-pooled sentence vector
    np.testing.assert_allclose(model.encode(texts), pooled, atol=1e-4)
