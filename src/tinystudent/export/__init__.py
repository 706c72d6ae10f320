"""Export: a trained student to a self-contained ONNX directory (graph, int8 graph,
preprocessing, model card) that `tinystudent.inference.Predictor` runs without torch."""

from tinystudent.export.api import ExportFormat, export_student, resolve_student_dir
from tinystudent.export.onnx_export import ExportError, export_onnx, preprocess_spec

__all__ = [
    "ExportError",
    "ExportFormat",
    "export_onnx",
    "export_student",
    "preprocess_spec",
    "resolve_student_dir",
]
