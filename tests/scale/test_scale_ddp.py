"""DDP training: 2 gloo processes give the weights of one process with the same global batch.

Dropout and zoneout are 0: with them, the masks a row gets depend on which rank drew them,
so a DDP run is an equivalent run but not the same numbers (see tinystudent/scale/ddp.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import toy_rows
from tinystudent.scale import train_student_ddp
from tinystudent.seed import seed_everything
from tinystudent.students import build_student
from tinystudent.train import TeacherSignals, TrainConfig, train_student
from tinystudent.train.ddp import shard_rows

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
    parts = [shard_rows(batch, r, 3) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    assert shard_rows([9], 1, 2) == []


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


def test_objectives_with_weights_of_their_own_match_too(data, tmp_path: Path) -> None:
    """The embedding objective's projection lives outside DDP's module: its gradients are
    summed by the strategy, so two ranks still train the very weights of one."""
    texts, probs, labels = data
    emb = np.random.default_rng(1).normal(size=(len(texts), 12)).astype(np.float32)
    signals = TeacherSignals(probs=probs, embeddings=emb)
    cfg = TrainConfig(
        epochs=2,
        batch_size=15,
        lr=1e-2,
        patience=5,
        objectives=[{"kind": "kd"}, {"kind": "ce"}, {"kind": "embedding", "loss": "both"}],
    )
    one, log1 = train_student_ddp(
        1, "pqrnn", OPTIONS, NAMES, texts, signals, labels, cfg, tmp_path / "1"
    )
    two, log2 = train_student_ddp(
        2, "pqrnn", OPTIONS, NAMES, texts, signals, labels, cfg, tmp_path / "2"
    )
    w1, w2 = _weights(one), _weights(two)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=1e-5, msg=k)
    assert log2.history[0]["embedding"] == pytest.approx(log1.history[0]["embedding"], abs=1e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.3])  # 0.3: every rank resumes its own masks
def test_killed_ddp_run_resumes_from_its_last_epoch(data, tmp_path: Path, dropout: float) -> None:
    """SIGKILL the whole process group of a 2-rank run after its first checkpoint; the rerun
    continues from there and ends with the weights of an uninterrupted run."""
    texts, probs, labels = data
    # Nothing held out: the last epoch's weights are kept, so they are what is compared.
    cfg = TrainConfig(epochs=3, batch_size=15, lr=1e-2, patience=5, val_fraction=0.0)
    options = {**OPTIONS, "dropout": dropout}
    ref, ref_log = train_student_ddp(
        2, "pqrnn", options, NAMES, texts, probs, labels, cfg, tmp_path / "ref"
    )
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"texts": texts, "probs": probs.tolist(), "labels": labels}))
    script = (
        "import json, sys, numpy as np\n"
        "from tinystudent.scale import train_student_ddp\n"
        "from tinystudent.train import TrainConfig\n"
        f"d = json.load(open({str(job)!r}))\n"
        f"cfg = TrainConfig(**{cfg.model_dump(mode='json', exclude_unset=True)!r})\n"
        f"train_student_ddp(2, 'pqrnn', {options!r}, {NAMES!r}, d['texts'],\n"
        "    np.asarray(d['probs'], dtype=np.float32), d['labels'], cfg, sys.argv[1],\n"
        "    checkpoint_dir=sys.argv[2])\n"
    )
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    env = {**os.environ, "TINYSTUDENT_SLOW_STEP_SECONDS": "0.05", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(out), str(ckpt)], env=env, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not (ckpt / "state.json").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "student.safetensors").exists()
    resumed, log = train_student_ddp(
        2, "pqrnn", options, NAMES, texts, probs, labels, cfg, out, checkpoint_dir=ckpt
    )
    assert log.resumed_from_epoch >= 1
    for k, v in _weights(ref).items():
        torch.testing.assert_close(_weights(resumed)[k], v, rtol=0, atol=1e-6, msg=k)
    assert log.history == ref_log.history  # the resumed epochs' losses too
