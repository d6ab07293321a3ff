"""The conv + BatchNorm + ReLU unit every UPerNet / FCN layer is made of (mmcv's ``ConvModule`` names)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
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

    def forward_concat(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """``forward(torch.cat(maps, dim=1))`` without building the concatenation.

        A convolution is linear in its input channels, so the conv of the concatenation is the sum of each map's
        conv with its slice of the weight: no (B, sum C_i, H, W) copy is written (UPerNet's fuse conv reads four
        stride-4 maps; the copy and its fresh allocation cost more than the three additions). Same result up to
        rounding, in training too.
        """
        conv = self.conv
        if sum(m.shape[1] for m in maps) != conv.in_channels:
            raise ValueError(f"maps with {[m.shape[1] for m in maps]} channels do not add up to the conv's "
                             f"{conv.in_channels} input channels")
        out, start = None, 0
        for m in maps:  # (B, C_i, H, W) each
            w = conv.weight[:, start:start + m.shape[1]]
            start += m.shape[1]
            part = F.conv2d(m, w, None, conv.stride, conv.padding, conv.dilation)
            out = part if out is None else out.add_(part)  # a conv keeps no output for backward: in place is safe
        if conv.bias is not None:
            out = out + conv.bias.view(1, -1, 1, 1)
        return self.activate(self.bn(out))  # (B, C_out, H, W)

