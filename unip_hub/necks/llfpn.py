"""UNIP's feature pyramids on a plain ViT (reference section 4): the last-layer FPN and the multi-layer baseline.

Both turn stride-16 ViT maps of width C into four maps of width C at strides 4, 8, 16 and 32 with the same
four branches (names as in the research code, where they live inside the mmseg backbone as ``fpn1``..``fpn4``):

- ``fpn1``: ConvTranspose 2x2 s2 -> BatchNorm -> GELU -> ConvTranspose 2x2 s2   (stride 16 -> 4)
- ``fpn2``: ConvTranspose 2x2 s2                                                 (stride 16 -> 8)
- ``fpn3``: identity                                                             (stride 16)
- ``fpn4``: MaxPool 2x2 s2                                                       (stride 16 -> 32)

:class:`LastLayerFPN` feeds the last block's map to every branch (LL-FPN); :class:`MultiLayerFPN` feeds one map
per branch (blocks [3, 5, 7, 11], ViT-L [7, 11, 15, 23]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class _Pyramid(nn.Module):
    """The four branches shared by both necks."""

    num_inputs: int = 1

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        c = embed_dim
        self.embed_dim = embed_dim
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(c, c, kernel_size=2, stride=2),
            nn.BatchNorm2d(c),
            nn.GELU(),
            nn.ConvTranspose2d(c, c, kernel_size=2, stride=2),
        )
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(c, c, kernel_size=2, stride=2))
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.out_channels: list[int] = [c] * 4
        self.strides: list[int] = [4, 8, 16, 32]

    def branches(self) -> list[nn.Module]:
        return [self.fpn1, self.fpn2, self.fpn3, self.fpn4]


class LastLayerFPN(_Pyramid):
    """LL-FPN: one stride-16 map (B, C, H/16, W/16) -> four maps at strides 4/8/16/32, all C channels.

    Args:
        embed_dim: Backbone width C.
    """

    num_inputs = 1

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """(B, C, H/16, W/16) (or a list ending with it) -> [(B, C, H/4, W/4), ..., (B, C, H/32, W/32)]."""
        if not isinstance(x, torch.Tensor):
            x = x[-1]
        return [branch(x) for branch in self.branches()]


class MultiLayerFPN(_Pyramid):
    """Multi-layer baseline: four stride-16 maps (blocks [3, 5, 7, 11]), one per branch, fine to coarse.

    Args:
        embed_dim: Backbone width C.
    """

    num_inputs = 4

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """4 maps (B, C, H/16, W/16) -> [(B, C, H/4, W/4), (B, C, H/8, W/8), (B, C, H/16, W/16), (B, C, H/32, W/32)]."""
        if isinstance(feats, torch.Tensor) or len(feats) != 4:
            raise ValueError("MultiLayerFPN needs a list of four maps (one per branch)")
        return [branch(f) for branch, f in zip(self.branches(), feats)]
