"""Detection targets from semantic label maps: one instance per connected blob of each chosen class.

Infrared segmentation sets (SODA, MFNet, SCUT-Seg) have no box annotations; this turns their label maps into
torchvision's detection targets for the detectors of :mod:`unip_hub.integrations.torchvision`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["instances_from_label"]


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
