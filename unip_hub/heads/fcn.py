"""FCN auxiliary head (mmseg's ``FCNHead`` without ``concat_input``): UNIP's auxiliary head on the stride-16 map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unip_hub.heads.conv import ConvBNReLU


class FCNHead(nn.Module):
    """``num_convs`` 3x3 conv-BN-ReLU layers on one map of the pyramid, dropout, a 1x1 classifier.

    Args:
        in_channels: Channels of the selected map.
        num_classes: Output classes K.
        channels: Width of the convs (UNIP: 256).
        num_convs: Number of 3x3 convs (UNIP: 1).
        in_index: Which map of the input list to use (UNIP: 2, the stride-16 map).
        dropout: Dropout before the classifier.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 256,
        num_convs: int = 1,
        in_index: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"num_convs must be >= 1, got {num_convs}")
        self.in_index = in_index
        self.num_classes = num_classes
        self.convs = nn.Sequential(
            *(ConvBNReLU(in_channels if i == 0 else channels, channels, 3) for i in range(num_convs))
        )
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """List of maps -> logits (B, K, h, w) at the resolution of map ``in_index``."""
        x = self.convs(feats[self.in_index])  # (B, C, h, w) -> (B, channels, h, w)
        return self.conv_seg(self.dropout(x))
