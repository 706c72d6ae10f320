"""The main distillation objective: soft teacher term plus hard-label term.

Convention (important when comparing numbers with other toolkits): the soft term is
``T^2 * KL(p_T || q_T)`` with batchmean reduction, as in Hinton et al. (2015), "Distilling
the Knowledge in a Neural Network". The ``T^2`` keeps gradient magnitudes comparable across
temperatures, so ``alpha`` means the same thing at every ``T``. TextBrewer's default
``kd_ce_loss`` is the soft cross-entropy ``-sum p_T log q_T`` *without* ``T^2``; it differs
from ours by the teacher's entropy (a constant) and by a ``T^2`` scale on the gradient.

The module returns its parts already weighted (``alpha`` and ``1 - alpha``); the trainer
sums the dict's values for ``backward()`` and logs each part under its key.
"""

from __future__ import annotations

from torch import Tensor, nn

from tinystudent.losses.ce import hard_ce
from tinystudent.losses.kd import kd_kl, kd_mse

#: Values accepted for ``DistillationLoss(kind=...)``.
KD_KINDS = ("kl", "mse")


class DistillationLoss(nn.Module):
    """``{"kd": alpha * kd_term, "ce": (1 - alpha) * hard_ce}``.

    ``temperature`` and ``alpha`` are plain float attributes so a schedule (see
    ``tinystudent.losses.schedule``) can change them between steps. ``kind="mse"`` matches
    centred logits instead and ignores ``temperature``.
    """

    def __init__(self, temperature: float = 2.0, alpha: float = 0.9, kind: str = "kl") -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if kind not in KD_KINDS:
            raise ValueError(f"kind must be one of {KD_KINDS}, got {kind!r}")
        self.temperature: float = float(temperature)
        self.alpha: float = float(alpha)
        self.kind: str = kind

    def forward(
        self, student_logits: Tensor, teacher_probs: Tensor, labels: Tensor | None
    ) -> dict[str, Tensor]:
        """Weighted parts; ``labels`` may be ``None`` or use -1 for rows without a gold label."""
        if self.kind == "kl":
            kd_term = kd_kl(student_logits, teacher_probs, self.temperature)
        else:
            kd_term = kd_mse(student_logits, teacher_probs)
        # No labels at all: an attached zero, as hard_ce gives for an all -1 batch.
        ce_term = student_logits.sum() * 0.0 if labels is None else hard_ce(student_logits, labels)
        return {"kd": self.alpha * kd_term, "ce": (1.0 - self.alpha) * ce_term}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, alpha={self.alpha}, kind={self.kind!r}"
