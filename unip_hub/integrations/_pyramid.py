"""The one multi-scale UNIP backbone every adapter wraps: ViT blocks -> LL-FPN (or multi-layer FPN) pyramid.

Submodules are named ``backbone`` and ``neck`` like :class:`~unip_hub.models.segmenter.Segmenter`, so the
``backbone.*`` / ``neck.*`` weights of a trained segmenter load into any adapter unchanged. Features are the
patch tokens **before** the final norm (as the research code's segmentation backbone takes them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from unip_hub.models.vit import UnipViT

# The UNIP fine-tuning backbone (reference section 4): layer scale 1.0, drop-path 0.1, trainable 32x32 pos-embed.
FINETUNE_DEFAULTS: dict[str, Any] = dict(img_size=512, drop_path_rate=0.1, init_values=1.0, pos_embed_trainable=True)
NECKS = ("last", "multi")


class ViTPyramid(nn.Module):
    """A UNIP ViT and a neck: images (B, C_in, H, W) -> 4 maps (B, C, H/s, W/s) for strides 4, 8, 16, 32.

    Args:
        backbone: The ViT; blocks ``layers`` are read un-normalised.
        neck: :class:`~unip_hub.necks.LastLayerFPN` or :class:`~unip_hub.necks.MultiLayerFPN`.
        layers: 0-based blocks fed to the neck (one for LL-FPN, four for the multi-layer FPN).
    """

    def __init__(self, backbone: UnipViT, neck: nn.Module, layers: Sequence[int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.layers = [int(i) % backbone.depth for i in layers]
        wanted = getattr(neck, "num_inputs", len(self.layers))
        if wanted != len(self.layers) or self.layers != sorted(set(self.layers)):
            raise ValueError(f"{type(neck).__name__} takes {wanted} distinct increasing blocks, got "
                             f"layers={list(layers)}")
        self.level_channels: list[int] = list(neck.out_channels)
        self.strides: list[int] = list(neck.strides)

    @property
    def out_channels(self) -> list[int]:
        """Channels of the four levels (all C)."""
        return self.level_channels

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    def block_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, H, W) -> len(layers) x (B, C, H/16, W/16), tokens before the final norm."""
        return list(self.backbone.get_intermediate_layers(x, n=self.layers, reshape=True, norm=False))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, H, W), H and W multiples of 16 -> [(B, C, H/4, W/4), ..., (B, C, H/32, W/32)]."""
        return list(self.neck(self.block_maps(x)))


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
