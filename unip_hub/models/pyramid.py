"""ViTPyramid: the one multi-scale view of a UNIP ViT, shared by the segmenter and every adapter.

Images -> the backbone's blocks ``layers`` (patch tokens **before** the final norm, as the research
segmentation backbone takes them) as (B, C, H/16, W/16) maps -> a neck (LL-FPN: strides 4/8/16/32). Submodules
are named ``backbone`` and ``neck``, so the ``backbone.*`` / ``neck.*`` weights of a trained segmenter load
into the timm, SMP, torchvision and transformers adapters unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unip_hub.models.vit import UnipViT


class ViTPyramid(nn.Module):
    """A UNIP ViT and an optional neck.

    Args:
        backbone: The ViT; blocks ``layers`` are read un-normalised and later blocks are not run.
        neck: :class:`~unip_hub.necks.LastLayerFPN` / :class:`~unip_hub.necks.MultiLayerFPN`, or ``None`` to
            return the block maps themselves (linear probing).
        layers: Distinct, increasing 0-based blocks (negative counts from the end); ``None`` = the last block.
    """

    def __init__(self, backbone: UnipViT, neck: nn.Module | None, layers: Sequence[int] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.layers = [backbone.depth - 1] if layers is None else [int(i) % backbone.depth for i in layers]
        if len(set(self.layers)) != len(self.layers) or self.layers != sorted(self.layers):
            raise ValueError(f"layers must be distinct and increasing block indices, got {list(layers or [])}")
        wanted = getattr(neck, "num_inputs", None)
        if wanted is not None and wanted != len(self.layers):
            raise ValueError(f"{type(neck).__name__} takes {wanted} maps but layers={self.layers} gives "
                             f"{len(self.layers)}")
        c = backbone.embed_dim
        self.level_channels: list[int] = list(neck.out_channels) if neck is not None else [c] * len(self.layers)
        self.strides: list[int] = list(neck.strides) if neck is not None else [backbone.patch_size] * len(self.layers)

    @property
    def out_channels(self) -> list[int]:
        """Channels of the returned maps (all C)."""
        return self.level_channels

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    def block_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, H, W) -> len(layers) x (B, C, H/16, W/16), tokens before the final norm."""
        maps = self.backbone.get_intermediate_layers(x, n=self.layers, reshape=True, norm=False)
        return [m.contiguous(memory_format=torch.channels_last) for m in maps]  # channels-last convs: ~5 % faster

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, H, W), H and W multiples of 16 -> the neck's maps [(B, C, H/4, W/4), ..., (B, C, H/32, W/32)]."""
        maps = self.block_maps(x)
        return maps if self.neck is None else list(self.neck(maps))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Same as :meth:`pyramid`."""
        return self.pyramid(x)
