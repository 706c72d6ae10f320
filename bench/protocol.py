"""`make bench`: the built-in protocols, with plots and the README blocks, from one command.

    python bench/protocol.py [--protocols rt bbc] [--quick] [--out bench/results]

For each protocol (docs/benchmark.md; defined in `tinystudent.bench.PROTOCOLS`) this writes
`<out>/<name>.json` (every figure, plus machine, versions, commit and command),
`<name>.md` (the table), `<name>-pareto.png` and `<name>-accuracy-vs-k.png`, `<name>.html` (the
table and the Pareto plot as one self-contained page), and refills the
README block between `<!-- bench-<name>:start -->` and `<!-- bench-<name>:end -->` when the
README has those markers. Embeddings are cached under ~/.cache/tinystudent/bench (or
--cache), and a finished (k, seed) unit survives an interruption: rerun to resume.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, environment  # noqa: E402
from plots import make_plots  # noqa: E402
from render_readme import protocol_block, replace_block  # noqa: E402
from report_page import write_protocol_page  # noqa: E402

from tinystudent.bench import PROTOCOLS, render_markdown, run_benchmark  # noqa: E402


def update_readme(doc: dict[str, Any], out_dir: Path, readme: Path = ROOT / "README.md") -> bool:
    """Refill the protocol's README block; False (and the README untouched) without markers."""
    marker = f"<!-- bench-{doc['protocol']}:start -->"
    text = readme.read_text(encoding="utf-8")
    if marker not in text:
        return False
    readme.write_text(replace_block(text, f"bench-{doc['protocol']}", protocol_block(doc, out_dir)))
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    ap.add_argument("--quick", action="store_true", help="smoke test (results in <out>/quick)")
    ap.add_argument("--out", default=str(RESULTS), help="results directory")
    ap.add_argument("--cache", help="cache directory (default ~/.cache/tinystudent/bench)")
    ap.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = ap.parse_args(argv)
    out = Path(args.out) / "quick" if args.quick else Path(args.out)
    for name in args.protocols:
        spec = PROTOCOLS[name]()
        if args.cache:
            spec.cache_dir = args.cache
        doc = run_benchmark(spec, out, quick=args.quick, environment=environment())
        for png in make_plots(doc, out):
            print(f"[bench] wrote {png}")
        print(f"[bench] wrote {write_protocol_page(out / f'{spec.name}.json')}")
        print(render_markdown(doc))
        if not args.quick and not args.no_readme:
            if update_readme(doc, out):
                print(f"[bench] README.md block bench-{name} updated")
            else:
                print(f"[bench] README.md has no bench-{name} markers; block not written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
