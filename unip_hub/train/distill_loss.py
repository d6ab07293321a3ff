"""NMI-HAD losses between attention logits (UNIP, ICLR 2025, section 3.2).

Both take the pre-softmax logits ``q k^T / sqrt(d)`` of the teacher layer and of the student's last block, each
(B, heads, N, N), and work per query row: the softmax over the keys of a row is a distribution. They run in float32
whatever the autocast dtype of the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if student_logits.ndim != 4 or student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher attention logits must both be (B, heads, N, N) of the same shape; got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)} (build the student with "
                         "last_heads = the teacher's head count and use the same input size)")


def attention_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(student)) per query row, summed over keys, averaged over batch, heads, queries.

    Returns:
        A scalar tensor.
    """
    _check(student_logits, teacher_logits)
    b, h, n, _ = student_logits.shape
    log_s = F.log_softmax(student_logits.float(), dim=-1)  # (B, H, N, N)
    log_t = F.log_softmax(teacher_logits.float(), dim=-1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="sum") / (b * h * n)


def attention_soft_ce_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Soft-target cross-entropy ``-sum_k softmax(t) log softmax(s)`` per row, averaged over batch, heads, queries.

    Equals :func:`attention_kl_loss` plus the teacher's entropy, a constant: same gradients, a different level.
    """
    _check(student_logits, teacher_logits)
    log_s = F.log_softmax(student_logits.float(), dim=-1)  # (B, H, N, N)
    p_t = F.softmax(teacher_logits.float(), dim=-1)
    return -(p_t * log_s).sum(dim=-1).mean()


LOSSES = {"kl": attention_kl_loss, "soft_ce": attention_soft_ce_loss}
"""Loss names accepted by :class:`unip_hub.train.distill.NMIHAD` and ``unip distill --loss``."""
