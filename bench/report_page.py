"""One protocol result as a self-contained HTML page: its table and the Pareto plot inline.

    python bench/report_page.py bench/results/rt.json [more.json ...]

Writes `<name>.html` beside each JSON (`bench/protocol.py` does it after every protocol). The
page is built with the run report's blocks (`tinystudent.evaluate.html`): no network, no
script, the plot a PNG data URI.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plots import pareto_plot  # noqa: E402

from tinystudent.bench import (  # noqa: E402
    protocol_caption,
    protocol_footer,
    protocol_summary,
    protocol_table,
)
from tinystudent.evaluate import html as h  # noqa: E402
from tinystudent.io import write_text  # noqa: E402


def _plain(markdown: str) -> str:
    """The protocol's Markdown lines as text: no bold, no list dash (backticks stay: code)."""
    return markdown.replace("**", "").removeprefix("- ")


def render_protocol_page(doc: dict[str, Any]) -> str:
    title = f"tinystudent bench: {doc['protocol']} ({doc['dataset']['name']})"
    head, rows = protocol_table(doc)
    body = [h.heading(title, 1), h.paragraph(_plain(protocol_caption(doc)), "meta")]
    body += [h.heading("Systems"), h.table(head, rows, numeric=range(1, len(head)))]
    summary = protocol_summary(doc)
    if summary:
        body.append(
            h.paragraph("Accuracy difference of the best distilled student (1-thread speed ratio):")
        )
        body.append(h.bullets(_plain(line) for line in summary))
    png = io.BytesIO()
    pareto_plot(doc, png)
    body += [
        h.heading("Accuracy against 1-thread throughput"),
        h.image(
            png.getvalue(),
            "Pareto plot: test accuracy against single-thread throughput, log x",
            "Each point is a system (mean ± std over seeds); the dashed line is the Pareto "
            "front, the systems no other beats on both speed and accuracy.",
        ),
        h.paragraph(_plain(protocol_footer(doc)), "meta"),
    ]
    return h.page(title, body)


def write_protocol_page(result_json: Path, out: Path | None = None) -> Path:
    doc = json.loads(result_json.read_text(encoding="utf-8"))
    path = out or result_json.with_suffix(".html")
    write_text(path, render_protocol_page(doc))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="bench/results/<protocol>.json files")
    args = ap.parse_args(argv)
    for path in args.results:
        print(f"wrote {write_protocol_page(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
