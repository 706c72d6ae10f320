"""Evaluation: metrics on the held-out test split and the side-by-side report."""

from tinystudent.evaluate.metrics import classification_metrics, throughput
from tinystudent.evaluate.report import render_markdown

__all__ = ["classification_metrics", "render_markdown", "throughput"]
