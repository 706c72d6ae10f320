"""Student training: one loop over teacher-labelled text, driven by a list of objectives."""

from tinystudent.train.batch import TeacherSignals, TrainBatch
from tinystudent.train.config import ObjectiveSpec, ScheduleSpec, TrainConfig
from tinystudent.train.engine import FitResult
from tinystudent.train.loop import train_student
from tinystudent.train.objectives import OBJECTIVES, Objective, ObjectiveConfig, register_objective
from tinystudent.train.strategy import Strategy

__all__ = [
    "FitResult",
    "OBJECTIVES",
    "Objective",
    "ObjectiveConfig",
    "ObjectiveSpec",
    "ScheduleSpec",
    "Strategy",
    "TeacherSignals",
    "TrainBatch",
    "TrainConfig",
    "register_objective",
    "train_student",
]
