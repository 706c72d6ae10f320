"""Students started from real packaged assets: GloVe, MiniLM-L6 and the ONNX MiniLM-L3."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import torch

from tinystudent.assets import asset_path, resolve_model
from tinystudent.students import build_student, load_student
from tinystudent.students.vocab import VocabStudent

pytestmark = pytest.mark.integration
LABELS = ["neg", "pos"]
SENTENCES = [
    "A gripping, beautifully shot film.",
    "Dull.",
    "I would not recommend this movie to anyone who values their time at all.",
]


def test_bilstm_starts_from_glove_rows():
    pq = pytest.importorskip("pyarrow.parquet")
    torch.manual_seed(0)
    student = cast(VocabStudent, build_student("bilstm", {"embeddings": "glove"}, LABELS))
    student.fit_preprocessing(["a good movie !", "zzqxjv bad"])
    d = asset_path("glove-50d")
    words = pq.read_table(d / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(d / "glove_6B_50d_emb.npy", mmap_mode="r")
    w = student.embedding.weight.detach().numpy()
    for word in ["good", "movie", "!", "bad"]:
        np.testing.assert_array_equal(w[student.vocab.stoi[word]], matrix[words.index(word)])
    assert np.abs(w[student.vocab.stoi["zzqxjv"]]).sum() > 0  # not in GloVe: random
    assert not w[0].any()  # <pad>


def test_teacher_word_vectors_place_synonyms_together():
    from tinystudent.students.embeddings import teacher_word_vectors

    v = teacher_word_vectors(["good", "great", "table", "awful"], "minilm-l6")
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_bag_teacher_init_on_a_real_vocabulary(tmp_path):
    texts = [f"{a} {b} film" for a in ["good", "great", "bad", "dull", "fine"] for b in "abcdefgh"]
    torch.manual_seed(0)
    student = cast(VocabStudent, build_student("bag", {"init": "teacher", "embed_dim": 8}, LABELS))
    student.fit_preprocessing(texts)
    w = student.embedding.weight.detach().numpy()
    assert w.shape == (len(student.vocab), 8)
    assert np.abs(w[2:]).sum() > 0 and not w[:2].any()
    student.save(tmp_path)
    np.testing.assert_allclose(
        load_student(tmp_path).predict_proba(texts), student.predict_proba(texts), atol=1e-6
    )


def test_teacher_layers_with_all_six_layers_reproduces_minilm_l6():
    from transformers import AutoModel

    student = build_student("transformer", {"init": "teacher_layers", "layers": 6}, LABELS)
    student.eval().fit_preprocessing(SENTENCES)
    teacher = AutoModel.from_pretrained(resolve_model("minilm-l6")).eval()
    features = student.featurize(SENTENCES)
    with torch.no_grad():
        ours = student(**features).hidden_states[-1]
        theirs = teacher(**features).last_hidden_state
    m = features["attention_mask"].bool()
    torch.testing.assert_close(ours[m], theirs[m], atol=1e-4, rtol=1e-4)


def test_default_transformer_is_three_minilm_layers_and_reloads_alone(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    student = build_student("transformer", {}, LABELS)
    student.fit_preprocessing(SENTENCES)
    source = load_file(str(resolve_model("minilm-l6")) + "/model.safetensors")
    state = student.bert.state_dict()  # type: ignore[union-attr]
    for j, i in enumerate([0, 2, 5]):
        key = "attention.self.key.weight"
        assert torch.equal(state[f"encoder.layer.{j}.{key}"], source[f"encoder.layer.{i}.{key}"])
    student.save(tmp_path)
    loaded = load_student(tmp_path)
    np.testing.assert_allclose(
        loaded.predict_proba(SENTENCES), student.predict_proba(SENTENCES), atol=1e-6
    )


def test_minilm_l3_conversion_matches_onnx_runtime():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from tinystudent.students.tiny_transformer import minilm_l3_onnx_path

    student = build_student("transformer", {"init": "minilm-l3", "max_tokens": 64}, LABELS)
    student.eval().fit_preprocessing(SENTENCES)
    features = student.featurize(SENTENCES)
    session = ort.InferenceSession(str(minilm_l3_onnx_path()), providers=["CPUExecutionProvider"])
    # outputs: per-token states ("onnx::Shape_422") and the mean-pooled sentence vector ("461")
    tokens, sentence = session.run(
        ["onnx::Shape_422", "461"],
        {k: v.numpy().astype(np.int64) for k, v in features.items()},
    )
    with torch.no_grad():
        h = student(**features).hidden_states[-1].numpy()
    m = features["attention_mask"].numpy().astype(bool)
    np.testing.assert_allclose(h[m], tokens[m], atol=1e-4)
    pooled = (h * m[..., None]).sum(1) / m.sum(1, keepdims=True)
    np.testing.assert_allclose(pooled, sentence, atol=1e-4)
