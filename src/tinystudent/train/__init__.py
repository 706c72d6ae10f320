"""Student training: the hot loop over teacher-labelled text, with early stopping on agreement."""

from tinystudent.train.loop import TrainConfig, TrainResult, train_student

__all__ = ["TrainConfig", "TrainResult", "train_student"]
