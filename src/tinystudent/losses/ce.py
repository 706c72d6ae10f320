"""Hard-label cross-entropy for batches where only some rows carry a gold label."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

#: Label value meaning "this row has no gold label" (teacher-labelled / unlabeled data).
NO_LABEL = -1


def hard_ce(student_logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over the rows whose label is not ``NO_LABEL``, averaged over those rows.

    When no row is labelled the result is a zero that is still attached to the graph
    (``logits.sum() * 0``), so ``backward()`` on a summed loss works for every batch; plain
    ``F.cross_entropy(..., ignore_index=-1)`` would return NaN there instead.
    """
    if student_logits.dim() != 2:
        shape = tuple(student_logits.shape)
        raise ValueError(f"student_logits must be [batch, classes], got {shape}")
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match batch size "
            f"{student_logits.shape[0]}"
        )
    keep = labels != NO_LABEL
    if not bool(keep.any()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[keep], labels[keep].long())
