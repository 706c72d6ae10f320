"""Building blocks of a self-contained HTML page: one file, no network, nothing executable.

Every piece of text goes through `html.escape`; figures are inline PNG data URIs; the page's
Content-Security-Policy allows no scripts and no remote resources, so a text from the data
(`<script>...`) is shown, never run, even if a caller forgot to escape it.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1280px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.meta { color: #555; margin-top: 0; }
div.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d4d4d4; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f4f7; }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
figcaption { color: #555; font-size: 0.85em; max-width: 520px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #7a5d00; background: #fff8e1; padding: 0.4em 0.8em; border-radius: 4px; }
code { background: #f2f4f7; padding: 0 0.25em; border-radius: 3px; }
td.text { max-width: 520px; overflow-wrap: anywhere; }
"""


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape(str(value), quote=True)


def page(title: str, body: Iterable[str]) -> str:
    """A whole document: the parts of `body` are HTML already (built with these helpers)."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{esc(text)}</h{level}>"


def paragraph(text: str, cls: str | None = None) -> str:
    """Escaped text; `spans in backticks` become <code> (backticks survive escaping)."""
    attr = f' class="{esc(cls)}"' if cls else ""
    body = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))
    return f"<p{attr}>{body}</p>"


def bullets(items: Iterable[str]) -> str:
    """A list of escaped texts (backticks as in `paragraph`)."""
    lis = "".join(paragraph(item).replace("<p>", "<li>").replace("</p>", "</li>") for item in items)
    return f"<ul>{lis}</ul>"


Cell = Any  # str, int or float (right-aligned), or None (shown as "-")


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    numeric: Iterable[int] = (),
    wrap: Iterable[int] = (),
) -> str:
    """A table (scrolling sideways when wider than the page), every cell escaped; columns
    in `numeric` (and numbers anywhere) are right-aligned, columns in `wrap` wrap anywhere."""
    right, long = set(numeric), set(wrap)
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    lines = ['<div class="wide"><table>', f"<thead><tr>{header}</tr></thead>", "<tbody>"]
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            is_number = isinstance(v, (int, float)) and not isinstance(v, bool)
            cls = "num" if v is None or is_number or i in right else "text" if i in long else ""
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{'-' if v is None else esc(v)}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table></div>"]
    return "\n".join(lines)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """A matplotlib figure (from `new_figure`) as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def image(png: bytes, alt: str, caption: str | None = None) -> str:
    """An inline image (with a caption when given)."""
    img = f'<img src="{png_data_uri(png)}" alt="{esc(alt)}">'
    if caption is None:
        return f"<figure>{img}</figure>"
    return f"<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>"


def figures(parts: Iterable[str]) -> str:
    """Figures side by side, wrapping on a narrow window."""
    return '<div class="figures">' + "".join(parts) + "</div>"


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure drawn by Agg, without pyplot: no global state and no backend switch
    (a notebook's own plots are left alone). Raises ImportError without matplotlib."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None
