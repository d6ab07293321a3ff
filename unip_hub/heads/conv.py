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

    def _weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        """(conv weight, conv bias, BN folded in): in eval without autograd the BatchNorm is folded into the conv.

        Eval BatchNorm is ``y * s + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)`` per output channel, so
        ``conv(x, W * s, b * s + beta - mean * s)`` gives the same map without a pass over it (a few % of a head).
        The scaled weight is a new tensor of the weight's size: folding is done only where the weight is smaller
        than the output map (``x``: an input map, which gives the output size of these stride-1 convs).
        """
        conv, bn = self.conv, self.bn
        out_numel = x.shape[0] * conv.out_channels * x.shape[-2] * x.shape[-1]
        if (self.training or bn.training or torch.is_grad_enabled() or bn.running_var is None
                or conv.weight.numel() > out_numel):
            return conv.weight, conv.bias, False
        s = torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
        s = s * bn.weight if bn.weight is not None else s
        bias = -bn.running_mean * s if conv.bias is None else (conv.bias - bn.running_mean) * s
        bias = bias + bn.bias if bn.bias is not None else bias
        return conv.weight * s.view(-1, 1, 1, 1), bias, True

    def _finish(self, y: torch.Tensor, folded: bool) -> torch.Tensor:
        return self.activate(y if folded else self.bn(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        weight, bias, folded = self._weights(x)
        conv = self.conv
        return self._finish(F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups), folded)

    def forward_concat(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """``forward(torch.cat(maps, dim=1))`` without building the concatenation.

        A convolution is linear in its input channels, so the conv of the concatenation is the sum of each map's
        conv with its slice of the weight: no (B, sum C_i, H, W) copy is written (UPerNet's fuse conv reads four
        stride-4 maps; the copy and its fresh allocation cost more than the three additions). Same result up to
        rounding, in training too.
        """
        conv = self.conv
        if sum(m.shape[1] for m in maps) != conv.in_channels or conv.groups != 1:
            raise ValueError(f"maps with {[m.shape[1] for m in maps]} channels do not add up to the conv's "
                             f"{conv.in_channels} input channels (groups must be 1)")
        weight, bias, folded = self._weights(maps[0])
        out, start = None, 0
        for m in maps:  # (B, C_i, H, W) each; the bias goes with the first
            part = F.conv2d(m, weight[:, start:start + m.shape[1]], bias if out is None else None, conv.stride,
                            conv.padding, conv.dilation)
            start += m.shape[1]
            out = part if out is None else out.add_(part)  # a conv keeps no output for backward: in place is safe
        return self._finish(out, folded)  # (B, C_out, H, W)
