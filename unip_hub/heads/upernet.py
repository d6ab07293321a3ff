"""UPerNet decode head (Xiao et al., 2018) exactly as mmseg's ``UPerHead``, the decode head of UNIP's LL-FPN.

Pyramid pooling on the coarsest map, 1x1 lateral convs, top-down additions, 3x3 FPN convs, concatenation at the
finest resolution, a 3x3 fuse conv, dropout and a 1x1 classifier. Parameter names follow mmseg
(``psp_modules.{i}.1.conv``, ``bottleneck``, ``lateral_convs``, ``fpn_convs``, ``fpn_bottleneck``, ``conv_seg``)
so a checkpoint of the research code loads without renaming.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unip_hub.heads.conv import ConvBNReLU


class UPerHead(nn.Module):
    """UPerNet head over a list of NCHW maps ordered fine to coarse (strides 4, 8, 16, 32 in UNIP).

    Args:
        in_channels: Channels of each input map.
        channels: Width of every internal conv (UNIP: the backbone width).
        num_classes: Output classes K.
        pool_scales: Output sizes of the pyramid-pooling branches on the last map.
        dropout: Dropout before the classifier.
        align_corners: ``align_corners`` of every bilinear resize.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int,
        num_classes: int,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if len(in_channels) < 1:
            raise ValueError("UPerHead needs at least one input map")
        self.in_channels = list(in_channels)
        self.channels = channels
        self.num_classes = num_classes
        self.align_corners = align_corners
        top = self.in_channels[-1]
        # mmseg PPM: ModuleList of Sequential(AdaptiveAvgPool2d, ConvModule) -> keys psp_modules.{i}.1.{conv,bn}
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvBNReLU(top, channels, 1)) for s in pool_scales
        )
        self.bottleneck = ConvBNReLU(top + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in self.in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in self.in_channels[:-1])
        self.fpn_bottleneck = ConvBNReLU(len(self.in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def _resize(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=self.align_corners)

    @staticmethod
    def _fuse(unit: ConvBNReLU, maps: list[torch.Tensor]) -> torch.Tensor:
        # the conv of the channel concatenation of maps, without building it (mmseg concatenates, same result)
        return unit.forward_concat(maps)

    def psp_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pyramid pooling of the coarsest map: (B, C_top, h, w) -> (B, channels, h, w)."""
        outs = [x] + [self._resize(ppm(x), x.shape[2:]) for ppm in self.psp_modules]
        return self._fuse(self.bottleneck, outs)  # (B, C_top + S * channels, h, w) -> (B, channels, h, w)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """List of maps (B, C_i, h_i, w_i), fine to coarse -> logits (B, K, h_0, w_0)."""
        if len(feats) != len(self.in_channels):
            raise ValueError(f"UPerHead built for {len(self.in_channels)} maps got {len(feats)}")
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        laterals.append(self.psp_forward(feats[-1]))
        for i in range(len(laterals) - 1, 0, -1):  # top-down: coarse added into the next finer level
            laterals[i - 1] = laterals[i - 1] + self._resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals[:-1])] + [laterals[-1]]
        size = outs[0].shape[2:]
        outs = [outs[0]] + [self._resize(o, size) for o in outs[1:]]
        x = self._fuse(self.fpn_bottleneck, outs)  # (B, L * channels, h_0, w_0) -> (B, channels, h_0, w_0)
        return self.conv_seg(self.dropout(x))  # (B, K, h_0, w_0)
