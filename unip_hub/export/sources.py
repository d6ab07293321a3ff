"""The model an export starts from, named the way ``unip export`` names it: an architecture, a folder, a file."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn


def load_model(
    name: str | os.PathLike,
    weights: str | None = None,
    num_classes: int | None = None,
    arch: str | None = None,
    last_heads: int | str | None = None,
) -> nn.Module:
    """A backbone or segmenter from ``name``.

    Args:
        name: An architecture (``unip_vit_small``: a backbone, or an untrained segmenter with ``num_classes``), a
            folder written by ``save_pretrained`` / ``unip convert`` (backbone), or a segmenter checkpoint file.
        weights: Backbone weights (registry tag or file), only with an architecture.
        num_classes: Segmenter classes (an untrained segmenter, or a checkpoint that does not say).
        arch: A segmenter checkpoint's architecture when the file does not say.
        last_heads: Backbone last-block heads: ``"distilled"`` or an int.

    Raises:
        ValueError: ``name`` is neither an architecture nor an existing path, or ``weights`` goes with a path.
    """
    from unip_hub.models.vit import ARCHS, UnipViT

    if str(name) in ARCHS:
        if num_classes is not None:
            from unip_hub.hub.segmenters import create_segmenter

            return create_segmenter(str(name), num_classes=num_classes, weights=weights, aux=False)
        from unip_hub.hub.backbones import create_backbone

        return create_backbone(str(name), weights=weights, last_heads=last_heads)
    path = Path(name)
    if not path.exists():
        raise ValueError(f"{str(name)!r} is neither an architecture ({sorted(ARCHS)}) nor an existing file or folder")
    if weights is not None:
        raise ValueError("--weights goes with an architecture name: unip export unip_vit_small --weights FILE ...")
    if path.is_dir():
        return UnipViT.from_pretrained(path)  # a folder written by save_pretrained / unip convert
    from unip_hub.hub.segmenters import load_segmenter

    return load_segmenter(path, arch=arch, num_classes=num_classes, aux=False)
