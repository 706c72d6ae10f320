"""The README's pQRNN block renders both bench/pqrnn.py result files, the transfer-set
training table included, from whatever JSON is there (a copy, so the test owns its inputs)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import render_readme  # noqa: E402


def test_pqrnn_block_adds_the_transfer_set_training_when_measured(tmp_path: Path):
    results = ROOT / "bench" / "results"
    main = shutil.copy(results / "pqrnn.json", tmp_path / "pqrnn.json")
    alone = render_readme.pqrnn_block(Path(main))
    assert "On the demo's transfer set" not in alone
    doc = json.loads((results / "pqrnn_transfer.json").read_text())
    doc["training"]["speedup_per_epoch"] = 2.5
    (tmp_path / "pqrnn_transfer.json").write_text(json.dumps(doc))
    block = render_readme.pqrnn_block(Path(main))
    assert block.startswith(alone.rstrip("\n"))
    assert "On the demo's transfer set (16,442 texts" in block
    assert "Per epoch fused is **x2.50** today's path" in block
    runs = doc["training"]["runs"]
    assert block.count("| fused | ") == 2 * sum(r["kernel"] == "fused" for r in runs.values())
