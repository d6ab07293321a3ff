"""NMI-HAD as a module: the student builder and :class:`NMIHAD` (UNIP, ICLR 2025, section 3).

The teacher runs blocks 1..L only, without gradients, and gives the pre-softmax logits of block L; the student
(built with ``last_heads`` = the teacher's head count) gives those of its last block; the loss is the per-row KL
divergence (or soft cross-entropy) between their softmaxes (:mod:`.distill_loss`). In both models every block
before the distilled one uses fused attention and only the distilled block computes explicit logits, once
(``forward_attention_logits``). Teachers come from :func:`unip_hub.hub.teachers.load_teacher`.
"""

from __future__ import annotations

import typing

import torch
from torch import nn

from unip_hub.models.vit import UnipViT, build_vit
from unip_hub.train.distill_loss import LOSSES

__all__ = ["NMIHAD", "build_student"]


def build_student(arch: str = "unip_vit_small", last_heads: int = 16, drop_path_rate: float = 0.1,
                  img_size: int = 224, **overrides: typing.Any) -> UnipViT:
    """A randomly initialised student (fixed sin-cos position embedding) whose last block has ``last_heads`` heads.

    ``overrides`` replace the architecture's numbers (``embed_dim``, ``depth``, ``num_heads``) for small
    experiments. The head count is recorded as ``distilled_last_heads`` (saved with ``save_pretrained``).
    """
    return build_vit(arch, last_heads=last_heads, distilled_last_heads=last_heads, drop_path_rate=drop_path_rate,
                     img_size=img_size, **overrides)


class NMIHAD(nn.Module):
    """The NMI-HAD objective as a module: ``forward(images)`` returns the scalar loss.

    Args:
        student: A UnipViT whose last block has as many heads as the teacher's distilled block.
        teacher: A UnipViT (see :func:`unip_hub.hub.teachers.load_teacher`); frozen here and kept in eval mode.
        teacher_layer: 1-based layer of ``teacher`` to distil; default its last block (a truncated teacher).
        loss: ``"kl"`` (the paper's) or ``"soft_ce"``.
    """

    def __init__(self, student: UnipViT, teacher: UnipViT, teacher_layer: int | None = None, loss: str = "kl"
                 ) -> None:
        super().__init__()
        depth = len(teacher.blocks)
        self.teacher_layer = depth if teacher_layer is None else int(teacher_layer)
        if not 1 <= self.teacher_layer <= depth:
            raise ValueError(f"teacher_layer {teacher_layer} out of range 1..{depth} (1-based)")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
        t_heads = teacher.blocks[self.teacher_layer - 1].attn.num_heads
        s_heads = student.blocks[-1].attn.num_heads
        if t_heads != s_heads:
            raise ValueError(f"the student's last block has {s_heads} heads but teacher layer {self.teacher_layer} has "
                             f"{t_heads}: build the student with last_heads={t_heads}")
        if student.patch_size != teacher.patch_size:
            raise ValueError(f"student patch {student.patch_size} != teacher patch {teacher.patch_size}: the token "
                             "grids (and attention maps) would differ")
        self.student = student
        self.teacher = teacher.requires_grad_(False).eval()
        self.loss_name = loss
        self.loss_fn = LOSSES[loss]

    def train(self, mode: bool = True) -> NMIHAD:
        super().train(mode)
        self.teacher.eval()  # no drop path / dropout in the teacher, ever
        return self

    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Teacher logits (B, heads, N, N) of layer L; blocks after L never run; no autograd graph."""
        with torch.no_grad():
            return self.teacher.forward_attention_logits(images, self.teacher_layer - 1)

    def student_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Student logits (B, heads, N, N) of its last block."""
        return self.student.forward_attention_logits(images, -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised gray images -> scalar loss."""
        return self.loss_fn(self.student_logits(images), self.teacher_logits(images))
