"""NMI-HAD: distilling a teacher layer's attention into a small ViT (UNIP, ICLR 2025, section 3).

The teacher runs blocks 1..L only, without gradients, and gives the pre-softmax logits of block L; the student
(built with ``last_heads`` = the teacher's head count) gives those of its last block; the loss is the per-row KL
divergence (or soft cross-entropy) between their softmaxes. In both models every block before the distilled one
uses fused attention and only the distilled block computes explicit logits, once (``forward_attention_logits``).

>>> teacher = load_teacher("mae_pretrain_vit_large.pth", arch="vit_large", layer=18)
>>> student = build_student("unip_vit_small", last_heads=16)
>>> loss = NMIHAD(student, teacher)(images)         # scalar; loss.backward() reaches the student only

Training: ``unip distill ...``, ``python -m unip_hub.train.distill ...`` or ``torchrun --nproc_per_node=8 -m
unip_hub.train.distill ...`` (same arguments; see :class:`DistillConfig` and :mod:`.distill_engine`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from unip_hub.models.vit import ARCHS, UnipViT, build_vit
from unip_hub.train.distill_loss import LOSSES


def load_teacher(checkpoint_or_timm_name: str | os.PathLike, arch: str | None = "vit_large", layer: int = 18, *,
                 fmt: str = "auto", pretrained: bool = True, drop_dist_token: bool = False) -> UnipViT:
    """The teacher truncated to its first ``layer`` blocks, frozen and in eval mode.

    Args:
        checkpoint_or_timm_name: An MAE / iBOT / DINO / DeiT / UNIP checkpoint file or folder, or ``timm:NAME``.
        arch: ``vit_large`` (MAE-L, iBOT-L: 16 heads), ``vit_base`` (DINO-B: 12 heads), ...; checked against the
            weights. ``None`` infers it (heads = width / 64). Ignored for ``timm:`` names.
        layer: 1-based teacher layer to distil (MAE-L 18, iBOT-L 21, DINO-B 9); see
            :func:`unip_hub.analysis.select_distill_layer`.
        fmt: File layout (``mae``, ``ibot``, ``dino``, ``deit``, ``unip``) or ``auto``.
        pretrained: ``timm:`` names only: download timm's weights.
        drop_dist_token: Accept a distilled DeiT by removing its distillation token.

    Raises:
        unip_hub.checkpoints.CheckpointError: the file lacks weights of a block up to ``layer`` (named), holds
            unexpected keys, or does not match ``arch``.
    """
    from unip_hub.hub.teachers import load_vit

    teacher = load_vit(checkpoint_or_timm_name, arch=arch, layer=layer, pretrained=pretrained, fmt=fmt,
                       drop_dist_token=drop_dist_token)
    return teacher.requires_grad_(False).eval()


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
        teacher: A UnipViT (see :func:`load_teacher`); frozen here and kept in eval mode.
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


@dataclass
class DistillConfig:
    """Every setting of an NMI-HAD run; defaults = the paper's recipe (MAE-L layer 18 -> ViT-S)."""

    teacher: str = field(default="", metadata={"help": "teacher checkpoint (MAE/iBOT/DINO/DeiT) or timm:NAME"})
    teacher_arch: str | None = field(default="vit_large", metadata={"help": "vit_large / vit_base / ... or None"})
    teacher_layer: int = field(default=18, metadata={"help": "1-based teacher layer (MAE-L 18, iBOT-L 21, DINO-B 9)"})
    teacher_format: str = field(default="auto", metadata={"help": "teacher file layout",
                                                           "choices": ("auto", "mae", "ibot", "dino", "deit", "unip")})
    model: str = field(default="unip_vit_small", metadata={"help": f"student architecture: {sorted(ARCHS)}"})
    embed_dim: int | None = field(default=None, metadata={"help": "override the student's width (experiments)"})
    depth: int | None = field(default=None, metadata={"help": "override the student's depth"})
    num_heads: int | None = field(default=None, metadata={"help": "override the student's heads"})
    last_heads: int | None = field(default=None, metadata={"help": "student last-block heads (default: teacher's)"})
    drop_path: float = field(default=0.1, metadata={"help": "student stochastic depth"})
    loss: str = field(default="kl", metadata={"help": "KL (paper) or soft cross-entropy", "choices": ("kl", "soft_ce")})
    data_path: str = field(default="", metadata={"help": "image folder, or the InfMix root"})
    data_layout: str = field(default="folder", metadata={"help": "any image folder, or InfMix",
                                                          "choices": ("folder", "infmix")})
    imagenet_root: str | None = field(default=None, metadata={"help": "InfMix: ImageNet train folder"})
    imagenet_per_class: int = field(default=200, metadata={"help": "InfMix: images per ImageNet class"})
    coco_root: str | None = field(default=None, metadata={"help": "InfMix: COCO train2017 folder"})
    input_size: int = field(default=224, metadata={"help": "crop size"})
    batch_size: int = field(default=64, metadata={"help": "images per process per step"})
    accum_iter: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    epochs: int = field(default=100, metadata={"help": "training epochs"})
    warmup_epochs: float = field(default=5, metadata={"help": "linear warm-up epochs"})
    blr: float = field(default=1.5e-4, metadata={"help": "base lr: lr = blr * effective batch / 256"})
    lr: float | None = field(default=None, metadata={"help": "absolute lr (overrides blr)"})
    min_lr: float = field(default=0.0, metadata={"help": "final lr of the cosine"})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (none on biases/norms/tokens)"})
    beta1: float = field(default=0.9, metadata={"help": "AdamW beta1"})
    beta2: float = field(default=0.95, metadata={"help": "AdamW beta2"})
    amp: str = field(default="auto", metadata={"help": "mixed precision (auto: fp16 on CUDA, none on CPU)",
                                               "choices": ("auto", "fp16", "bf16", "none")})
    grad_checkpointing: bool = field(default=False, metadata={"help": "recompute student blocks (memory)"})
    save_every: int = field(default=20, metadata={"help": "checkpoint every N epochs (and at the end)"})
    output_dir: str = field(default="nmi_had_out", metadata={"help": "checkpoints, log, exported student"})
    resume: str | None = field(default=None, metadata={"help": "checkpoint to resume, or 'auto' (latest in out)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    num_workers: int = field(default=8, metadata={"help": "data-loading workers per process"})
    device: str = field(default="auto", metadata={"help": "auto, cuda or cpu"})
    max_steps_per_epoch: int | None = field(default=None, metadata={"help": "cap steps per epoch (small runs)"})
    pretrained_teacher: bool = field(default=True, metadata={"help": "timm teachers: download their weights"})

    def to_namespace(self) -> argparse.Namespace:
        """As the ``args`` the released checkpoints carry (plain values only)."""
        return argparse.Namespace(**dataclasses.asdict(self))


def _arg_type(hint: typing.Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def add_distill_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds one ``--option`` per :class:`DistillConfig` field (defaults and help from the dataclass)."""
    hints = typing.get_type_hints(DistillConfig)
    for f in dataclasses.fields(DistillConfig):
        typ = _arg_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{f.metadata.get('help', '')} (default: {f.default})"
        if typ is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_)
        else:
            parser.add_argument(flag, type=typ, default=f.default, help=help_, choices=f.metadata.get("choices"),
                                required=f.name in ("teacher", "data_path"))
    return parser


def config_from_args(args: argparse.Namespace) -> DistillConfig:
    """A :class:`DistillConfig` from parsed arguments (unknown attributes ignored)."""
    return DistillConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DistillConfig)})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m unip_hub.train.distill``; works under ``torchrun``."""
    from unip_hub.train.distill_engine import run_distillation

    parser = add_distill_arguments(argparse.ArgumentParser(prog="python -m unip_hub.train.distill",
                                                           description=__doc__.splitlines()[0]))
    cfg = config_from_args(parser.parse_args(argv))
    try:
        run_distillation(cfg)
    except (ValueError, OSError) as e:
        print(f"distill: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
