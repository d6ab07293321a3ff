"""Segmentation heads: each takes a list of NCHW maps and returns logits at the first map's resolution."""

from unip_hub.heads.conv import ConvBNReLU
from unip_hub.heads.fcn import FCNHead
from unip_hub.heads.linear import LinearHead
from unip_hub.heads.upernet import UPerHead

__all__ = ["ConvBNReLU", "FCNHead", "LinearHead", "UPerHead"]
