"""The benchmark protocol (docs/benchmark.md): every system side by side, same split, same process.

For each k (labeled examples per class) and seed, one unit: the teachers fit on the k gold
examples; each student is distilled on the teacher-labelled transfer set (gold + pool) and
trained again on the k gold labels alone (the no-KD twin); TF-IDF+LR, fastText and
model2vec+LR see the gold labels only. Accuracy and macro-F1 are averaged over seeds;
parameters, size on disk and CPU speed are measured once per system on the largest k's first
seed, in this process, so the ratios against the teacher compare like with like.

A unit is a pipeline run directory: its teachers and students are fitted and trained by the
pipeline's own stages and resume through its `stages.json` (bench/protocol.py).

    tinystudent bench rt                 # a built-in protocol (rt, bbc)
    tinystudent bench my_bench.yaml      # a bench spec, or a plain recipe (its teacher(s)/student)

`spec` holds the spec, `systems` the teachers, students and baselines of a unit, `protocol`
the run loop and resume, `report` the summary, tables and Markdown.
"""

from tinystudent.bench.progress import Progress
from tinystudent.bench.protocol import run_benchmark
from tinystudent.bench.report import (
    compare,
    protocol_caption,
    protocol_footer,
    protocol_summary,
    protocol_table,
    render_markdown,
    summarise,
)
from tinystudent.bench.spec import (
    PROTOCOLS,
    BaselineSpec,
    BenchAmalgamation,
    BenchData,
    BenchSpec,
    SpeedSpec,
    load_bench,
    parse_bench,
    quick_spec,
    spec_from_recipe,
    unit_recipe,
)

__all__ = [
    "PROTOCOLS",
    "BaselineSpec",
    "BenchAmalgamation",
    "BenchData",
    "BenchSpec",
    "Progress",
    "SpeedSpec",
    "compare",
    "load_bench",
    "parse_bench",
    "protocol_caption",
    "protocol_footer",
    "protocol_summary",
    "protocol_table",
    "quick_spec",
    "render_markdown",
    "run_benchmark",
    "spec_from_recipe",
    "summarise",
    "unit_recipe",
]
