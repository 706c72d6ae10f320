"""tinystudent: distill large teachers into tiny, fast students from a few labeled examples.

The pipeline is data -> teacher -> soft labels (cache) -> student -> evaluate; see
`tinystudent.pipeline.run` for the composition and `tinystudent.cli` for the commands.
"""

__version__ = "0.1.0"
