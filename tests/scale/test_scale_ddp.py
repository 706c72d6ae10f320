"""DDP training: 2 gloo processes give the weights of one process with the same global batch.

Dropout and zoneout are 0: with them, the masks a row gets depend on which rank drew them,
so a DDP run is an equivalent run but not the same numbers (see tinystudent/scale/ddp.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import toy_rows
from tinystudent.scale import train_student_ddp
from tinystudent.scale.ddp import _shard
from tinystudent.seed import seed_everything
from tinystudent.students import build_student
from tinystudent.train import TrainConfig, train_student

OPTIONS = {
    "features": 32,
    "bottleneck": 16,
    "hidden": 8,
    "layers": 1,
    "dropout": 0.0,
    "zoneout": 0.0,
    "max_tokens": 16,
}
NAMES = ["neg", "pos"]


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray, list[int]]:
    """97 rows in global batches of 15: uneven shards, and a last batch of one row that
    leaves rank 1 empty-handed. Every fifth row has a gold label (exercises the ce weights)."""
    rows = toy_rows(97)
    probs = np.random.default_rng(0).dirichlet([1, 1], size=len(rows)).astype(np.float32)
    labels = [NAMES.index(y) if i % 5 == 0 else -1 for i, (_, y) in enumerate(rows)]
    return [t for t, _ in rows], probs, labels


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Like each spawned rank (2 ranks on 2 cores); on a busy machine 2 threads crawl."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(student: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in student.state_dict().items()}


def test_shards_cover_each_batch_once() -> None:
    batch = list(range(7))
    parts = [_shard(batch, r, 3) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    assert _shard([9], 1, 2) == []


def test_two_processes_match_one(data, tmp_path: Path) -> None:
    texts, probs, labels = data
    cfg = TrainConfig(epochs=2, batch_size=15, lr=1e-2, val_fraction=0.1, patience=5)
    one, log1 = train_student_ddp(
        1, "pqrnn", OPTIONS, NAMES, texts, probs, labels, cfg, tmp_path / "1"
    )
    two, log2 = train_student_ddp(
        2, "pqrnn", OPTIONS, NAMES, texts, probs, labels, cfg, tmp_path / "2"
    )
    w1, w2 = _weights(one), _weights(two)
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=1e-5, msg=k)
    for r1, r2 in zip(log1.history, log2.history, strict=True):
        assert r1.keys() == r2.keys()
        for k in r1:
            assert r2[k] == pytest.approx(r1[k], abs=1e-5), k
    assert log2.best_epoch == log1.best_epoch
    assert (tmp_path / "2" / "student.safetensors").exists()
    assert not list((tmp_path / "2").glob("*.pt")) and not (tmp_path / "2" / ".ddp-job").exists()


def test_one_process_is_train_student(data, tmp_path: Path) -> None:
    texts, probs, labels = data
    cfg = TrainConfig(epochs=2, batch_size=15, lr=1e-2, val_fraction=0.1, patience=5)
    one, log1 = train_student_ddp(1, "pqrnn", OPTIONS, NAMES, texts, probs, labels, cfg, tmp_path)
    seed_everything(cfg.seed)
    ref = build_student("pqrnn", OPTIONS, NAMES)
    result = train_student(ref, texts, probs, labels, cfg)
    w1, w0 = _weights(one), _weights(ref)
    for k in w0:
        torch.testing.assert_close(w1[k], w0[k], rtol=0, atol=0, msg=k)  # the very same run
    assert log1.history == result.history and log1.best_epoch == result.best_epoch
