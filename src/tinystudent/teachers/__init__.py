"""Teachers: models whose class probabilities the student learns from."""

from tinystudent.teachers.base import Teacher
from tinystudent.teachers.encoder import EncoderTeacher, EncoderTeacherConfig

__all__ = ["Teacher", "EncoderTeacher", "EncoderTeacherConfig"]
