"""report.html in a real headless browser: the DOM has the table and the images, the
screenshot is a drawn page, and the markup-looking text stays text.

Needs Debian's `chromium` (`.ci/run` installs it); skipped, saying so, where it is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tinystudent.evaluate.run_page import write_report_html

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install chromium)"),
]


def browse(tmp: Path, page: Path, *args: str) -> str:
    assert BROWSER is not None
    cmd = [BROWSER, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args, page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_page_renders_in_chromium(synthetic_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    page = write_report_html(synthetic_run)
    dom = browse(tmp_path, page, "--dump-dom")
    assert dom.count("<table>") == 4  # systems, transfer set, training history, disagreements
    assert "<td>student (distilled)</td>" in dom
    assert dom.count('<img src="data:image/png;base64,') == 4
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script" not in dom

    shot = tmp_path / "page.png"
    browse(tmp_path, page, f"--screenshot={shot}", "--window-size=1200,2000")
    assert shot.is_file()
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, tables and plots, not blank
    # the confusion matrices' dark blue cells: the inline PNGs were drawn, not blocked
    blue = sum(n for n, (r, g, b) in colours if b > 90 and b - r > 60 and b - g > 30)
    assert blue > 5000
