"""The transformer student's starts, on the tiny random BERT teacher of tests/conftest.py."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tinystudent.students import build_student, load_student
from tinystudent.students.tiny_transformer import (
    build_bert,
    copy_layers,
    spaced_layers,
    teacher_checkpoint,
    train_tokenizer,
)

LABELS = ["neg", "pos"]
TEXTS = ["the film was great", "awful , boring plot", "", "a very charming story and actors"]
RANDOM = {
    "init": "random",
    "tokenizer": "trained",
    "vocab_size": 80,
    "layers": 2,
    "hidden": 16,
    "heads": 4,
    "intermediate": 32,
}


def test_spaced_layers_keep_first_and_last():
    assert spaced_layers(3, 6) == [0, 2, 5]
    assert spaced_layers(2, 6) == [0, 5]
    assert spaced_layers(1, 6) == [5]
    assert spaced_layers(6, 6) == list(range(6))
    assert spaced_layers(9, 6) == list(range(6))


def test_trained_tokenizer_wraps_texts_in_cls_and_sep():
    tok = train_tokenizer(TEXTS * 5, vocab_size=60)
    enc = tok.encode("great film")
    assert enc.tokens == ["[CLS]", "great", "film", "[SEP]"]
    assert tok.token_to_id("[PAD]") == 0
    assert tok.get_vocab_size() <= 60


def test_trained_tokenizer_spells_out_rare_words_instead_of_unk():
    tok = train_tokenizer(TEXTS * 5, vocab_size=50)  # room for characters and few words
    assert "[UNK]" not in tok.encode("a grating plot").tokens
    assert tok.encode("tag").tokens[1:-1] == ["t", "##a", "##g"]


def test_trained_tokenizer_is_the_same_every_time():
    # The `tokenizers` WordPiece trainer breaks ties differently on every call; ours must not.
    texts = [f"{a} {b} {a}{b}" for a in ["ab", "cd", "ef", "gh"] for b in ["ij", "kl", "mn"]]
    assert len({train_tokenizer(texts, 60).to_str() for _ in range(5)}) == 1


def test_unbuilt_student_says_what_to_do():
    student = build_student("transformer", RANDOM, LABELS)
    assert student.num_params() == 0
    with pytest.raises(RuntimeError, match="fit_preprocessing"):
        student.featurize(["x"])


def test_hidden_states_and_attentions_for_tinybert_losses():
    torch.manual_seed(0)
    student = build_student("transformer", {**RANDOM, "attentions": True}, LABELS)
    student.fit_preprocessing(TEXTS * 5)
    features = student.eval().featurize(TEXTS)
    out = student(**features)
    batch, length = features["input_ids"].shape
    assert out.hidden_states is not None and len(out.hidden_states) == 3  # embeddings + 2
    assert all(h.shape == (batch, length, 16) for h in out.hidden_states)
    assert out.attentions is not None and len(out.attentions) == 2
    att = out.attentions[0]
    assert att.shape == (batch, 4, length, length)
    torch.testing.assert_close(att.sum(-1), torch.ones(batch, 4, length))
    padded_keys = features["attention_mask"][:, None, None, :] == 0
    assert att.masked_select(padded_keys.expand_as(att)).abs().max() < 1e-6
    plain = build_student("transformer", RANDOM, LABELS)
    plain.fit_preprocessing(TEXTS)
    assert plain.eval()(**plain.featurize(TEXTS)).attentions is None


def test_teacher_layers_copies_the_chosen_layers_and_cuts_positions(tiny_teacher_dir):
    options = {"init": "teacher_layers", "teacher_model": str(tiny_teacher_dir), "layers": 1}
    student = build_student("transformer", {**options, "max_tokens": 16}, LABELS)
    student.fit_preprocessing(TEXTS)
    source = load_file(str(tiny_teacher_dir / "model.safetensors"))
    state = student.bert.state_dict()  # type: ignore[union-attr]
    # one layer of two: the last one is kept
    for name in ["attention.self.query.weight", "output.dense.bias", "output.LayerNorm.weight"]:
        assert torch.equal(state[f"encoder.layer.0.{name}"], source[f"encoder.layer.1.{name}"])
    assert torch.equal(
        state["embeddings.word_embeddings.weight"], source["embeddings.word_embeddings.weight"]
    )
    pos = source["embeddings.position_embeddings.weight"]
    assert torch.equal(state["embeddings.position_embeddings.weight"], pos[:16])


def test_teacher_layers_with_every_layer_reproduces_the_teacher(tiny_teacher_dir):
    from transformers import AutoModel

    options = {"init": "teacher_layers", "teacher_model": str(tiny_teacher_dir), "layers": 2}
    student = build_student("transformer", options, LABELS).eval()
    student.fit_preprocessing(TEXTS)
    teacher = AutoModel.from_pretrained(str(tiny_teacher_dir)).eval()
    features = student.featurize(TEXTS)
    with torch.no_grad():
        ours = student(**features).hidden_states[-1]
        theirs = teacher(**features).last_hidden_state
    m = features["attention_mask"].bool()
    torch.testing.assert_close(ours[m], theirs[m], atol=1e-5, rtol=1e-5)


def test_teacher_layers_out_of_range_names_the_option(tiny_teacher_dir):
    options = {
        "init": "teacher_layers",
        "teacher_model": str(tiny_teacher_dir),
        "layers": 1,
        "teacher_layers": [4],
    }
    with pytest.raises(ValueError, match="teacher_layers"):
        build_student("transformer", options, LABELS).fit_preprocessing(TEXTS)


def test_saved_student_reloads_without_its_teacher(tiny_teacher_dir, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    options = {"init": "teacher_layers", "teacher_model": str(teacher), "layers": 1}
    torch.manual_seed(0)
    student = build_student("transformer", options, LABELS)
    student.fit_preprocessing(TEXTS)
    student.save(tmp_path / "student")
    shutil.rmtree(teacher)
    loaded = load_student(tmp_path / "student")
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), student.predict_proba(TEXTS), atol=1e-6)
    assert (
        loaded.featurize(TEXTS)["input_ids"].tolist()
        == student.featurize(TEXTS)["input_ids"].tolist()
    )


def test_copy_layers_reports_missing_and_misshapen_tensors(tiny_teacher_dir):
    source, arch = teacher_checkpoint(str(tiny_teacher_dir))
    bert = build_bert({**arch, "num_hidden_layers": 1})
    with pytest.raises(ValueError, match="encoder.layer.7"):
        copy_layers(bert, source, [7])
    wide = build_bert({**arch, "num_hidden_layers": 1, "intermediate_size": 8})
    with pytest.raises(ValueError, match="shape"):
        copy_layers(wide, source, [0])


def test_max_tokens_truncates_wordpieces():
    student = build_student("transformer", {**RANDOM, "max_tokens": 6}, LABELS)
    student.fit_preprocessing(TEXTS * 3)
    ids = student.featurize(["great " * 40])["input_ids"]
    assert ids.shape == (1, 6)
