"""The settings of an NMI-HAD run (:class:`DistillConfig`), one field per ``unip distill`` option.

Defaults are the paper's recipe (MAE-L layer 18 -> ViT-S, effective batch 4096, 100 epochs); the help texts of
the options are the fields' metadata (:mod:`unip_hub.train.config`).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from unip_hub.models.vit import ARCHS

__all__ = ["DistillConfig"]


@dataclass
class DistillConfig:
    """Every setting of an NMI-HAD run; defaults = the paper's recipe (MAE-L layer 18 -> ViT-S)."""

    teacher: str = field(default="", metadata={"help": "teacher checkpoint (MAE/iBOT/DINO/DeiT) or timm:NAME",
                                                       "required": True})
    teacher_arch: str | None = field(default="vit_large", metadata={
        "help": "vit_large / vit_base / ..., or auto (infer the shape from the weights)"})
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
    data_path: str = field(default="", metadata={"help": "image folder, or the InfMix root", "required": True})
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

    @property
    def student_overrides(self) -> dict[str, int]:
        """The student's architecture overrides that are set (``embed_dim``, ``depth``, ``num_heads``)."""
        return {k: v for k, v in (("embed_dim", self.embed_dim), ("depth", self.depth), ("num_heads", self.num_heads))
                if v is not None}

    @property
    def teacher_arch_or_none(self) -> str | None:
        """``teacher_arch``, with ``auto`` / ``none`` / empty as None (infer the shape from the weights)."""
        return None if (self.teacher_arch or "auto").lower() in ("auto", "none", "") else self.teacher_arch
