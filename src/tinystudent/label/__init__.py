"""Soft labels: the teacher labels the transfer set once, into a persistent content-keyed cache."""

from tinystudent.label.cache import LabelStats, SoftLabelCache, label_texts

__all__ = ["LabelStats", "SoftLabelCache", "label_texts"]
