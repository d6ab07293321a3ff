"""The conv + BatchNorm + ReLU unit every UPerNet / FCN layer is made of (mmcv's ``ConvModule`` names)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Module):
    """``conv`` (no bias) -> ``bn`` -> ReLU; children named like mmcv's ``ConvModule`` so mmseg weights load as is.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel side (1 or 3 in the heads).
        padding: Zero padding on each side; ``None`` = ``kernel_size // 2`` (keeps the spatial size).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int | None = None) -> None:
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        return self.activate(self.bn(self.conv(x)))
