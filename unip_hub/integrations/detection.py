"""UNIP as a torchvision detection backbone (Faster R-CNN, Mask R-CNN, RetinaNet, ...).

>>> from torchvision.models.detection import FasterRCNN
>>> from unip_hub.detection import IMAGE_MEAN, IMAGE_STD, build_backbone
>>> backbone = build_backbone("unip_vit_small", weights="mae_large", fpn=True)
>>> det = FasterRCNN(backbone, num_classes=3, image_mean=IMAGE_MEAN, image_std=IMAGE_STD)

The ViT's last block feeds the LL-FPN (strides 4/8/16/32, C channels each); with ``fpn=True`` torchvision's
``FeaturePyramidNetwork`` (+ ``LastLevelMaxPool``, stride 64) maps them to ``out_channels`` and adds the top-down
path, exactly like ``BackboneWithFPN`` over a ResNet, so the detectors' default anchors and RoI poolers
(feature maps ``"0"``..``"3"``, ``"pool"``) fit as they are. Images are 0-1 gray copied to 3 channels; normalise
them with the pre-training statistics :data:`IMAGE_MEAN` / :data:`IMAGE_STD` (the detector's transform does it).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unip_hub.integrations._pyramid import ViTPyramid, build_pyramid

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "UnipDetectionBackbone", "build_backbone", "instances_from_label"]

IMAGE_MEAN = [0.3801] * 3
"""Pre-training normalisation of 0-1 images (gray in 3 channels), for ``FasterRCNN(image_mean=...)``."""
IMAGE_STD = [0.1871] * 3


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


def _components(mask: torch.Tensor) -> torch.Tensor:
    """8-connected components of a bool map (H, W) -> int64 ids (0 = outside), by max-propagation."""
    h, w = mask.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float64).view(1, 1, h, w) * mask  # (1, 1, H, W)
    while True:
        grown = F.max_pool2d(ids, 3, stride=1, padding=1) * mask
        if torch.equal(grown, ids):
            return ids[0, 0].long()
        ids = grown


def instances_from_label(label: np.ndarray | torch.Tensor, classes: Sequence[int], min_area: int = 4
                         ) -> dict[str, torch.Tensor]:
    """Detection targets from a semantic label map: one instance per connected blob of each class in ``classes``.

    Args:
        label: Class indices (H, W).
        classes: Semantic classes to detect; instance label ``i + 1`` is ``classes[i]`` (0 = background).
        min_area: Blobs with fewer pixels are dropped.

    Returns:
        torchvision's target dict: ``boxes`` (N, 4) float xyxy, ``labels`` (N,) int64, ``masks`` (N, H, W) uint8.
    """
    label = torch.as_tensor(np.asarray(label)).long()
    boxes, labels, masks = [], [], []
    for det_id, cls in enumerate(classes, start=1):
        ids = _components(label == cls)
        for value in ids.unique():
            blob = ids == value
            if value == 0 or int(blob.sum()) < min_area:
                continue
            ys, xs = torch.nonzero(blob, as_tuple=True)
            boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
            labels.append(det_id)
            masks.append(blob.to(torch.uint8))
    h, w = label.shape
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "masks": torch.stack(masks) if masks else torch.zeros(0, h, w, dtype=torch.uint8)}
