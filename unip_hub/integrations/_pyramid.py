"""Building the multi-scale UNIP backbone (:class:`~unip_hub.models.pyramid.ViTPyramid`) every adapter wraps.

Submodules are named ``backbone`` and ``neck`` like :class:`~unip_hub.models.segmenter.Segmenter`, so the
``backbone.*`` / ``neck.*`` weights of a trained segmenter load into any adapter unchanged. Features are the
patch tokens **before** the final norm (as the research code's segmentation backbone takes them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from unip_hub.hub.segmenters import FINETUNE_DEFAULTS, NECKS
from unip_hub.models.pyramid import ViTPyramid

__all__ = ["FINETUNE_DEFAULTS", "NECKS", "build_pyramid"]


def build_pyramid(
    arch: str,
    *,
    weights: str | os.PathLike | Any = None,
    neck: str = "last",
    layers: Sequence[int] | None = None,
    last_heads: int | str | None = None,
    **vit_kwargs: Any,
) -> ViTPyramid:
    """Builds a :class:`ViTPyramid`, loading backbone ``weights`` through :mod:`unip_hub.checkpoints`.

    Args:
        arch: ``unip_vit_tiny`` / ``_small`` / ``_base`` / ``_large``.
        weights: Registry tag, :class:`~unip_hub.Weights`, file or folder (see :func:`unip_hub.create_backbone`).
        neck: ``"last"`` (LL-FPN on the last block, UNIP's) or ``"multi"`` (blocks [3, 5, 7, 11]).
        layers: Override the blocks read.
        last_heads: Head count of the last block (``None`` = standard, as the official fine-tuning).
        **vit_kwargs: :class:`UnipViT` options; the fine-tuning recipe (:data:`FINETUNE_DEFAULTS`) fills the rest.
    """
    from unip_hub.hub.backbones import create_backbone
    from unip_hub.hub.segmenters import default_layers
    from unip_hub.necks import LastLayerFPN, MultiLayerFPN

    if neck not in NECKS:
        raise ValueError(f"neck must be one of {NECKS}, got {neck!r}")
    vit = create_backbone(arch, weights=weights, last_heads=last_heads, **{**FINETUNE_DEFAULTS, **vit_kwargs})
    layers = list(layers) if layers is not None else default_layers(vit.depth, "upernet", neck)
    fpn = LastLayerFPN(vit.embed_dim) if neck == "last" else MultiLayerFPN(vit.embed_dim)
    return ViTPyramid(vit, fpn, layers)
