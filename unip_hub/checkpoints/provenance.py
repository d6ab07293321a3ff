"""How a student checkpoint was distilled, as the file itself records it.

The research distillation script (``main_pretrain.py``) saves its ``argparse`` arguments with the weights:
``args.last_heads`` (heads of the student's last block, e.g. 16 for MAE-L/iBOT-L teachers, 12 for DINO-B),
``args.teacher_model`` (``vit_large``, ``vit_base``), ``args.intermediate`` (the 1-based teacher layer),
``args.model`` (``unip_vit_small_patch16``) and ``args.use_dino``. This package's own runs save the same facts
under ``last_heads`` / ``teacher_arch`` / ``teacher_layer`` / ``model``. The weights cannot tell the head count
(the last block's ``qkv`` has the same shape for any split), so these arguments are the first source of truth;
the registry and the file name come after them (:func:`unip_hub.hub.backbones.distillation_of`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DistillationRecord", "record_from_args"]


@dataclass(frozen=True)
class DistillationRecord:
    """What is known about a student's distillation and where it was read.

    Attributes:
        last_heads: Heads of the student's last block during distillation.
        teacher: Teacher model name as recorded (``vit_large``, ``MAE ViT-L/16``...), if known.
        teacher_layer: 1-based teacher layer whose attention was distilled, if known.
        student: Student model name as recorded, if known.
        source: Where it was read: ``checkpoint args``, ``registry``, ``config.json``, ``file name`` or
            ``given`` (a converted folder keeps the source its record was first read from).
    """

    last_heads: int
    teacher: str | None = None
    teacher_layer: int | None = None
    student: str | None = None
    source: str = "checkpoint args"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _teacher_name(args: Mapping[str, Any]) -> str | None:
    name = args.get("teacher_model") or args.get("teacher_arch") or args.get("teacher")
    if not isinstance(name, str) or not name:
        return None
    return f"{name} (DINO)" if args.get("use_dino") is True else name


def record_from_args(obj: Mapping[str, Any], teacher_heads: Callable[[str], int | None] | None = None
                     ) -> DistillationRecord | None:
    """The distillation recorded in a checkpoint's ``args`` (Namespace or dict), or ``None`` if it records none.

    A positive integer ``last_heads`` is a record; teacher files (MAE, DeiT) also carry ``args``, but no
    ``last_heads``. This package's runs save ``last_heads=None`` for "the teacher's head count": then
    ``teacher_heads(teacher name)`` (e.g. ``vit_large`` -> 16) gives it, when the name tells it.
    """
    args = obj.get("args")
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if not isinstance(args, Mapping):
        return None
    heads = _int(args.get("last_heads"))
    teacher = _teacher_name(args)
    if heads is None and "last_heads" in args and args["last_heads"] is None and teacher and teacher_heads:
        heads = teacher_heads(teacher)
    if heads is None:
        return None
    layer = _int(args.get("intermediate")) or _int(args.get("teacher_layer"))
    student = args.get("model") if isinstance(args.get("model"), str) else None
    return DistillationRecord(heads, teacher, layer, student, "checkpoint args")
