"""NMI-HAD: distilling a teacher layer's attention into a small ViT (UNIP, ICLR 2025, section 3).

The public face of the distillation: the loss module and builders (:mod:`.distill_model`), the teacher loader
(:func:`unip_hub.hub.teachers.load_teacher`), the run settings (:mod:`.distill_config`), the run
(:mod:`.distill_engine`) and the command line (:func:`main`).

>>> teacher = load_teacher("mae_pretrain_vit_large.pth", arch="vit_large", layer=18)
>>> student = build_student("unip_vit_small", last_heads=16)
>>> loss = NMIHAD(student, teacher)(images)         # scalar; loss.backward() reaches the student only

Training: ``unip distill ...``, ``python -m unip_hub.train.distill ...`` or ``torchrun --nproc_per_node=8 -m
unip_hub.train.distill ...`` (same arguments; see :class:`DistillConfig`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from unip_hub.hub.teachers import load_teacher
from unip_hub.train.config import add_dataclass_arguments, dataclass_from_args
from unip_hub.train.distill_config import DistillConfig
from unip_hub.train.distill_model import NMIHAD, build_student

__all__ = ["NMIHAD", "DistillConfig", "add_distill_arguments", "build_student", "config_from_args", "distill_main",
           "load_teacher", "main"]


def add_distill_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds one ``--option`` per :class:`DistillConfig` field (defaults and help from the dataclass)."""
    return add_dataclass_arguments(parser, DistillConfig)


def config_from_args(args: argparse.Namespace) -> DistillConfig:
    """A :class:`DistillConfig` from parsed arguments (unknown attributes ignored)."""
    return dataclass_from_args(DistillConfig, args)


def distill_main(args: argparse.Namespace) -> int:
    """``unip distill``: runs the parsed options and prints what was written."""
    from unip_hub.train.distill_engine import run_distillation

    result = run_distillation(config_from_args(args))
    if result.losses:
        first, last = min(result.losses), max(result.losses)
        print(f"epochs {first}-{last}: loss {result.losses[first][0]:.4f} -> {result.losses[last][-1]:.4f} "
              f"(peak lr {result.lr:.3g})")
    if result.checkpoint:
        print(f"checkpoint (released layout): {result.checkpoint}")
    if result.export_dir:
        print(f"student folder: {result.export_dir}  -> unip_vit_*(weights='{result.export_dir}', "
              "last_heads='distilled')")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m unip_hub.train.distill``; works under ``torchrun``."""
    parser = add_distill_arguments(argparse.ArgumentParser(prog="python -m unip_hub.train.distill",
                                                           description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        return distill_main(args)
    except (ValueError, OSError) as e:
        print(f"distill: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
