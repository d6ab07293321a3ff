"""Linear-probing head of UNIP: maps resized to the first one, concatenated, one 1x1 conv (no BN, no ReLU)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LinearHead(nn.Module):
    """A single 1x1 conv classifier over the concatenation of several maps.

    Args:
        in_channels: Channels of each input map (UNIP: four times the backbone width, blocks [3, 5, 7, 11]).
        num_classes: Output classes K.
        align_corners: ``align_corners`` of the bilinear resize to the first map's size.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, align_corners: bool = False) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        self.num_classes = num_classes
        self.align_corners = align_corners
        self.conv_seg = nn.Conv2d(sum(self.in_channels), num_classes, kernel_size=1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """List of maps (B, C_i, h_i, w_i) -> logits (B, K, h_0, w_0)."""
        if len(feats) != len(self.in_channels):
            raise ValueError(f"LinearHead built for {len(self.in_channels)} maps got {len(feats)}")
        size = feats[0].shape[2:]
        maps = [feats[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=self.align_corners) for f in feats[1:]
        ]
        return self.conv_seg(torch.cat(maps, dim=1))  # (B, sum C_i, h_0, w_0) -> (B, K, h_0, w_0)
