"""``unip distill``: NMI-HAD pre-training (same options as ``python -m unip_hub.train.distill``)."""

from __future__ import annotations

import argparse


def _cmd_distill(args: argparse.Namespace) -> int:
    from unip_hub.train.distill import distill_main

    return distill_main(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``distill``."""
    from unip_hub.train.distill import add_distill_arguments

    p = sub.add_parser("distill", help="NMI-HAD pre-training: distil a teacher layer's attention into a small ViT",
                       description="NMI-HAD pre-training (UNIP section 3). Multi-GPU: torchrun --nproc_per_node=N "
                       "-m unip_hub.train.distill with the same options.")
    add_distill_arguments(p)
    p.set_defaults(func=_cmd_distill)
