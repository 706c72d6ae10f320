"""A bench table in the README links the plots its JSON can have: the Pareto plot always, the
accuracy-vs-k curve only where the run has more than one k (a peer spec at k = 8 has none)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import render_readme  # noqa: E402


def test_protocol_block_links_the_plots_the_run_can_have(tmp_path: Path):
    results = ROOT / "bench" / "results"
    one_k = json.loads((results / "peers_rt_k8.json").read_text())
    block = render_readme.protocol_block(one_k, tmp_path)
    assert "| setfit |" in block
    assert f"{tmp_path}/peers_rt_k8-pareto.png" in block
    assert "accuracy-vs-k" not in block
    two_k = json.loads((results / "rt.json").read_text())
    block = render_readme.protocol_block(two_k, results)
    assert "](bench/results/rt-pareto.png)" in block
    assert "](bench/results/rt-accuracy-vs-k.png)" in block


def test_the_peer_specs_the_readme_renders_exist():
    for name in render_readme.PEER_SPECS:
        assert (ROOT / "bench" / "specs" / f"{name}.yaml").is_file()
