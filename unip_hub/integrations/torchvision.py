"""UNIP as a torchvision detection backbone (Faster R-CNN, Mask R-CNN, RetinaNet, ...).

>>> from torchvision.models.detection import FasterRCNN
>>> from unip_hub.integrations.torchvision import IMAGE_MEAN, IMAGE_STD, build_backbone
>>> backbone = build_backbone("unip_vit_small", weights="mae_large", fpn=True)
>>> det = FasterRCNN(backbone, num_classes=3, image_mean=IMAGE_MEAN, image_std=IMAGE_STD)

The ViT's last block feeds the LL-FPN (strides 4/8/16/32, C channels each); with ``fpn=True`` torchvision's
``FeaturePyramidNetwork`` (+ ``LastLevelMaxPool``, stride 64) maps them to ``out_channels`` and adds the top-down
path, exactly like ``BackboneWithFPN`` over a ResNet, so the detectors' default anchors and RoI poolers
(feature maps ``"0"``..``"3"``, ``"pool"``) fit as they are. Images are 0-1 gray copied to 3 channels; normalise
them with the pre-training statistics :data:`IMAGE_MEAN` / :data:`IMAGE_STD` (the detector's transform does it).
Detection targets from semantic label maps: :func:`unip_hub.data.instances.instances_from_label` (re-exported here).
Also reachable as ``unip_hub.detection``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from unip_hub.constants import PRETRAIN_MEAN, PRETRAIN_STD
from unip_hub.data.instances import instances_from_label
from unip_hub.integrations._pyramid import ViTPyramid, build_pyramid

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "UnipDetectionBackbone", "build_backbone", "instances_from_label"]

IMAGE_MEAN = [PRETRAIN_MEAN] * 3
"""Pre-training normalisation of 0-1 images (gray in 3 channels), for ``FasterRCNN(image_mean=...)``."""
IMAGE_STD = [PRETRAIN_STD] * 3


class UnipDetectionBackbone(nn.Module):
    """``body`` (ViT + LL-FPN) and optionally ``fpn`` (torchvision's FPN); returns an ``OrderedDict`` of maps.

    Args:
        body: The UNIP pyramid.
        fpn: torchvision ``FeaturePyramidNetwork`` over the four levels, or ``None``.
        out_channels: Channels of every returned map (torchvision detectors read this attribute).
    """

    def __init__(self, body: ViTPyramid, fpn: nn.Module | None, out_channels: int,
                 levels: Sequence[int] = (0, 1, 2, 3)) -> None:
        super().__init__()
        if not levels or any(i not in range(4) for i in levels) or list(levels) != sorted(set(levels)):
            raise ValueError(f"levels must be increasing indices of the 4 LL-FPN levels (0-3), got {list(levels)}")
        self.body = body
        self.fpn = fpn
        self.out_channels = out_channels
        self.levels = list(levels)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """(B, 3, H, W), H and W multiples of 32 -> {"0": stride 4, "1": 8, "2": 16, "3": 32 (, "pool": 64)}.

        Keys number the selected ``levels`` in order (``levels=(1, 2, 3)`` gives "0": stride 8 ...).
        """
        maps = self.body(x)  # 4 x (B, C, H/s, W/s), s = 4, 8, 16, 32
        out = OrderedDict((str(k), maps[i]) for k, i in enumerate(self.levels))
        return self.fpn(out) if self.fpn is not None else out


def build_backbone(
    arch: str = "unip_vit_small",
    *,
    weights: str | os.PathLike | Any = None,
    fpn: bool = True,
    out_channels: int = 256,
    neck: str = "last",
    levels: Sequence[int] = (0, 1, 2, 3),
    extra_blocks: nn.Module | None = None,
    **vit_kwargs: Any,
) -> UnipDetectionBackbone:
    """A detection backbone for torchvision's ``FasterRCNN`` / ``MaskRCNN`` / ``RetinaNet``.

    Args:
        arch: ``unip_vit_tiny`` / ``_small`` / ``_base`` / ``_large``.
        weights: Backbone weights (registry tag, :class:`~unip_hub.Weights`, file, folder) or ``None``.
        fpn: Add torchvision's FPN (``out_channels`` wide, plus a max-pooled stride-64 level ``"pool"``); without
            it the four LL-FPN levels (C wide) are returned and detectors need anchors for 4 maps.
        out_channels: FPN width.
        neck: ``"last"`` (LL-FPN) or ``"multi"`` (blocks [3, 5, 7, 11]).
        levels: LL-FPN levels used (0-3 = strides 4-32); RetinaNet's recipe: ``(1, 2, 3)`` with
            ``extra_blocks=LastLevelP6P7(out_channels, out_channels)``.
        extra_blocks: torchvision FPN extra block (default ``LastLevelMaxPool``).
        **vit_kwargs: :class:`~unip_hub.models.vit.UnipViT` options over the fine-tuning recipe (layer scale 1.0,
            drop-path 0.1, trainable position embedding stored at 512).
    """
    body = build_pyramid(arch, weights=weights, neck=neck, **vit_kwargs)
    if not fpn:
        return UnipDetectionBackbone(body, None, body.embed_dim, levels)
    from torchvision.ops import FeaturePyramidNetwork
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    pyramid = FeaturePyramidNetwork([body.level_channels[i] for i in levels], out_channels,
                                    extra_blocks=extra_blocks if extra_blocks is not None else LastLevelMaxPool())
    return UnipDetectionBackbone(body, pyramid, out_channels, levels)
