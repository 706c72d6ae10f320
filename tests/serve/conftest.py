"""One tiny exported pQRNN (random weights) with a model card, shared by the server tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LABELS = ["neg", "pos"]
CARD = {
    "name": "toy-k8",
    "teacher": {"name": "tiny-bert", "accuracy": 0.9, "macro_f1": 0.9, "params": 1000},
    "data": {"dataset": "toy", "k": 8, "seed": 0, "test_size": 30, "transfer_size": 80},
    "metrics": {"ONNX int8": {"accuracy": 0.8, "macro_f1": 0.79}},
}


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from tinystudent.export import export_onnx
    from tinystudent.students import build_student

    torch.manual_seed(0)
    options = {"features": 32, "bottleneck": 8, "hidden": 8, "layers": 1}
    student = build_student("pqrnn", options, LABELS).eval()
    out = tmp_path_factory.mktemp("export")
    export_onnx(student, out, int8=True)
    (out / "card.json").write_text(json.dumps(CARD))
    return out
