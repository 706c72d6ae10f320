"""Errors that must name the fix: a missing Ray extra, a bad job directory, a bad nproc."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tinystudent.errors import TinyStudentError
from tinystudent.scale import label_texts_ray, train_student_ddp, write_job
from tinystudent.scale.ddp import run_worker
from tinystudent.train import TrainConfig


def test_missing_ray_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "teacher.json").write_text('{"fingerprint": "f", "label_names": ["a", "b"]}')
    monkeypatch.setitem(sys.modules, "ray", None)  # what an absent package looks like
    with pytest.raises(TinyStudentError, match=r"pip install 'tinystudent\[ray\]'"):
        label_texts_ray(tmp_path, ["some text"], tmp_path / "cache")


def test_not_a_teacher_dir(tmp_path: Path) -> None:
    with pytest.raises(TinyStudentError, match="saved teacher"):
        label_texts_ray(tmp_path, ["x"], tmp_path / "cache")


def test_job_checks(tmp_path: Path) -> None:
    probs = np.full((2, 2), 0.5, np.float32)
    with pytest.raises(ValueError, match="same length"):
        write_job(tmp_path, "pqrnn", {}, ["a", "b"], ["x"], probs, None, TrainConfig())
    job = write_job(tmp_path / "j", "pqrnn", {}, ["a", "b"], ["x", "y"], probs, None, TrainConfig())
    (job / "job.json").write_text(
        (job / "job.json").read_text().replace('"format": 2', '"format": 9')
    )
    with pytest.raises(ValueError, match="job format 9"):
        run_worker(job, tmp_path / "out")
    with pytest.raises(ValueError, match="nproc"):
        train_student_ddp(
            0, "pqrnn", {}, ["a", "b"], ["x"], probs[:1], None, TrainConfig(), tmp_path
        )
