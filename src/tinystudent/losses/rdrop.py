"""R-Drop consistency (Liang et al., 2021): two dropout passes of the same batch should agree.

The symmetric KL is the mean of both directions, so it is symmetric in its arguments and
on the same scale as a single KL; the R-Drop paper's ``alpha`` multiplies the *sum*, so
their ``alpha`` equals the `rdrop` objective's ``weight / 2``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def symmetric_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """``(KL(p_a || p_b) + KL(p_b || p_a)) / 2`` with batchmean reduction."""
    if logits_a.shape != logits_b.shape:
        raise ValueError(
            f"logits shapes differ: {tuple(logits_a.shape)} vs {tuple(logits_b.shape)}"
        )
    log_a = F.log_softmax(logits_a, dim=-1)
    log_b = F.log_softmax(logits_b, dim=-1)
    # F.kl_div(input, target) is KL(target || input).
    kl_ab = F.kl_div(log_b, log_a, reduction="batchmean", log_target=True)
    kl_ba = F.kl_div(log_a, log_b, reduction="batchmean", log_target=True)
    return 0.5 * (kl_ab + kl_ba)
