"""report.html from a run directory: the table, inline figures, escaped texts, no network."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

import tinystudent
from tests.run_pages import SCRIPT_TEXT, make_predictions
from tinystudent.cli import main
from tinystudent.errors import TinyStudentError
from tinystudent.evaluate import run_page
from tinystudent.evaluate.predictions import load_predictions
from tinystudent.evaluate.run_page import disagreements, write_report_html

IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in IMG.findall(page)]


def test_cli_report_builds_a_self_contained_page(synthetic_run: Path, capsys) -> None:
    assert main(["report", str(synthetic_run), "--top", "5"]) == 0
    assert str(synthetic_run / "report.html") in capsys.readouterr().out
    page = (synthetic_run / "report.html").read_text(encoding="utf-8")
    report = json.loads((synthetic_run / "report.json").read_text())
    # the systems table, figures as report.md gives them
    assert "<td>teacher</td><td>minilm-l6</td>" in page
    assert "<td>student (distilled)</td><td>pqrnn</td>" in page
    assert f'<td class="num">{report["student"]["accuracy"]:.3f}</td>' in page
    assert f'<td class="num">{report["student"]["ece"]:.3f}</td>' in page
    # transfer set composition, with shares
    assert '<td>generated</td><td class="num">300</td>' in page
    assert '<td>total</td><td class="num">1024</td>' in page
    # two confusion matrices, the reliability diagram, the training history: real PNGs
    pngs = images(page)
    assert len(pngs) == 4 == page.count("<img ")
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 2000 for p in pngs)
    # the text that looks like markup is shown escaped, first among the disagreements
    assert html.escape(SCRIPT_TEXT) in page
    assert "<script" not in page and "alert(1)</script>" not in page
    rows = re.findall(r'<td class="text">(.*?)</td>', page)
    assert len(rows) == 5 and html.unescape(rows[0]) == SCRIPT_TEXT
    # nothing is fetched: no remote reference, every src is a data URI, scripts are refused
    assert "http://" not in page and "https://" not in page
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))
    assert "default-src 'none'" in page


def test_disagreements_are_furthest_first() -> None:
    preds = make_predictions()
    top = disagreements(preds, 10)
    distance = 0.5 * np.abs(preds.teacher - preds.student).sum(1)
    assert [i for i, _ in top] == list(np.argsort(-distance, kind="stable")[:10])
    assert top[0][0] == 7 and top[0][1] == pytest.approx(0.97)
    assert disagreements(preds, 0) == []


def test_predictions_round_trip(synthetic_run: Path) -> None:
    preds = load_predictions(synthetic_run)
    assert preds is not None and preds.texts[7] == SCRIPT_TEXT
    original = make_predictions()
    assert np.allclose(preds.teacher, original.teacher, atol=1e-6)
    assert preds.labels == original.labels


def test_run_without_predictions_keeps_tables_and_says_why(synthetic_run: Path) -> None:
    (synthetic_run / "predictions.json").unlink()
    page = write_report_html(synthetic_run).read_text(encoding="utf-8")
    assert "<td>teacher</td>" in page and "predates predictions.json" in page
    assert len(images(page)) == 1  # the training history only
    assert "Where student and teacher disagree" not in page


def test_without_matplotlib_the_page_has_no_figures(synthetic_run: Path, monkeypatch) -> None:
    monkeypatch.setattr(run_page.h, "have_matplotlib", lambda: False)
    page = tinystudent.write_report_html(synthetic_run).read_text(encoding="utf-8")
    assert "<img" not in page and "matplotlib is not installed" in page
    assert html.escape(SCRIPT_TEXT) in page  # the disagreement table needs no figure


def test_bad_run_directories_are_clear_errors(tmp_path: Path, synthetic_run: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no report.json" in capsys.readouterr().err
    other = tmp_path / "embed"
    other.mkdir()
    (other / "report.json").write_text('{"student": {}, "spearman": 0.8}')
    assert main(["report", str(other)]) == 2
    assert "not a classification run" in capsys.readouterr().err
    data = json.loads((synthetic_run / "predictions.json").read_text())
    data["student_probs"] = data["student_probs"][:-1]
    (synthetic_run / "predictions.json").write_text(json.dumps(data))
    with pytest.raises(TinyStudentError, match=r"predictions.json: student probabilities"):
        write_report_html(synthetic_run)
    assert main(["report", str(synthetic_run), "--top", "-1"]) == 2
