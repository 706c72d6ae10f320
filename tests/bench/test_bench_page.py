"""bench/report_page.py: a protocol result (the committed rt.json) as one self-contained page."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import report_page  # noqa: E402


def test_protocol_page_has_the_table_and_the_pareto_plot(tmp_path: Path) -> None:
    result = tmp_path / "rt.json"
    shutil.copy(ROOT / "bench" / "results" / "rt.json", result)
    assert report_page.main([str(result)]) == 0
    page = (tmp_path / "rt.html").read_text(encoding="utf-8")
    doc = json.loads(result.read_text())
    rows = re.findall(r"<tr><td>(.*?)</td>", page)
    assert sorted(html.unescape(r) for r in rows) == sorted(doc["systems"])
    teacher = doc["systems"]["mpnet-base (teacher)"]["by_k"]["64"]["accuracy"]
    assert f"{teacher['mean']:.3f} ± {teacher['std']:.3f}" in page
    assert "<th>texts/s 1 thread</th>" in page
    pngs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 1 and base64.b64decode(pngs[0]).startswith(b"\x89PNG")
    assert "Pareto" in page and "**" not in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
