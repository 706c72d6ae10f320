"""Plain baselines a user would pick instead of distillation, behind one small interface.

Importing this package is cheap: fastText and model2vec are imported only when a baseline that
needs them is fitted (`pip install 'tinystudent[bench]'`).
"""

from tinystudent.baselines.base import Baseline, NotFittedError
from tinystudent.baselines.fasttext_baseline import FastTextClassifier
from tinystudent.baselines.model2vec_baseline import Model2VecLogReg, distill_static_model
from tinystudent.baselines.peers import Model2VecClassifier, SetFitPeer
from tinystudent.baselines.setfit_distilled import SetFitDistilledPeer
from tinystudent.baselines.tfidf import TfidfLogReg

BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls
    for cls in (
        TfidfLogReg,
        FastTextClassifier,
        Model2VecLogReg,
        SetFitPeer,
        SetFitDistilledPeer,
        Model2VecClassifier,
    )
}

__all__ = [
    "BASELINES",
    "Baseline",
    "FastTextClassifier",
    "Model2VecClassifier",
    "Model2VecLogReg",
    "NotFittedError",
    "SetFitDistilledPeer",
    "SetFitPeer",
    "TfidfLogReg",
    "distill_static_model",
]
