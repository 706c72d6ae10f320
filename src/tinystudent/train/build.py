"""Objectives built for one run: their widths come from a probe of the student and teacher."""

from __future__ import annotations

import torch

from tinystudent.students.base import Student
from tinystudent.train.batch import TeacherSignals
from tinystudent.train.config import TrainConfig
from tinystudent.train.objectives import OBJECTIVES, Objective, ObjectiveContext


def _context(
    student: Student, signals: TeacherSignals, probe: list[str], device: torch.device, need: bool
) -> ObjectiveContext:
    """The widths objectives size their projections by. The probe forward runs in eval mode
    under no_grad (no dropout draws), and only when an objective needs a width, so runs
    with plain logit objectives consume exactly the random numbers they always did."""
    ctx = ObjectiveContext(num_classes=len(student.label_names), teacher_dim=signals.embedding_dim)
    if not need or not probe:
        return ctx
    was_training = student.training
    student.eval()
    with torch.no_grad():
        feats = {k: v.to(device) for k, v in student.featurize(probe).items()}
        out = student(**feats)
        if out.pooled is not None:
            ctx.student_dim = int(out.pooled.shape[-1])
        if out.hidden_states:
            ctx.student_hidden_dim = int(out.hidden_states[-1].shape[-1])
        if signals.layers is not None:
            hidden, _ = signals.layers(feats)
            ctx.teacher_hidden_dim = int(hidden[-1].shape[-1])
    student.train(was_training)
    return ctx


def build_objectives(
    cfg: TrainConfig,
    student: Student,
    signals: TeacherSignals,
    probe: list[str],
    device: torch.device,
) -> list[Objective]:
    """One module per entry of `cfg.resolved_objectives()`, in order, on `device`.

    Signals an objective needs but the run lacks are one clear error naming the objective.
    """
    specs = cfg.resolved_objectives()
    missing = [
        (s.kind, n)
        for s in specs
        for n in sorted(OBJECTIVES[s.kind].needs)
        if getattr(signals, n) is None
    ]
    if missing:
        kind, need = missing[0]
        raise ValueError(f"objective {kind}: needs teacher {need}, which this run did not compute")
    check = getattr(signals.layers, "check", None)
    if check is not None:
        check(student)
    need_widths = any(OBJECTIVES[s.kind].needs for s in specs)
    ctx = _context(student, signals, probe, device, need_widths)
    return [OBJECTIVES[s.kind](s.config(), ctx).to(device) for s in specs]
