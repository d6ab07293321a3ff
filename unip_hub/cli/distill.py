"""``unip distill``: NMI-HAD pre-training (same options as ``python -m unip_hub.train.distill``)."""

from __future__ import annotations

import argparse


def _cmd_distill(args: argparse.Namespace) -> int:
    from unip_hub.train.distill import config_from_args
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


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``distill``."""
    from unip_hub.train.distill import add_distill_arguments

    p = sub.add_parser("distill", help="NMI-HAD pre-training: distil a teacher layer's attention into a small ViT",
                       description="NMI-HAD pre-training (UNIP section 3). Multi-GPU: torchrun --nproc_per_node=N "
                       "-m unip_hub.train.distill with the same options.")
    add_distill_arguments(p)
    p.set_defaults(func=_cmd_distill)
