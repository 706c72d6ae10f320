"""The light runtime: an exported model directory in, labels and probabilities out.

Depends only on numpy, onnxruntime and `tokenizers`, never on torch or transformers, so a
service can ship without them. `Predictor` is imported lazily: the students import
`tinystudent.inference.preprocess` for training, which must not require onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tinystudent.inference.predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tinystudent.inference import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
