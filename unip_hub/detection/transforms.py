# exports: DetectionTransform, LargeScaleJitter, train_transforms, eval_transforms
"""Detection augmentation on ``tv_tensors`` with torchvision ``transforms.v2``: the reference recipe's large-scale
jitter (ViTDet / Copy-Paste LSJ), horizontal flip and photometric jitter on gray.

One training step of :class:`LargeScaleJitter`, in order:

1. photometric jitter (brightness and contrast factors drawn once; an image of 3 identical gray copies is
   transformed as one channel and copied to 3 at the end, so the copies stay identical and the work is a third);
2. horizontal flip with probability 0.5;
3. resize keeping the aspect ratio so that the image fits ``scale * size`` square, ``scale`` uniform in
   ``scale_range`` (0.1..2.0);
4. a random ``size x size`` crop where the image is larger, padding at the right / bottom where it is smaller
   (with the model's mean gray, which its normalisation maps to 0, as the detector's own batching pads);
5. boxes clipped to the crop, then degenerate ones (under 1 px wide / high) dropped with
   ``SanitizeBoundingBoxes``. Both are counted into ``counts`` (``clipped``, ``dropped``), which
   :class:`~unip_hub.detection.datasets.DetectionDataset` totals over workers and logs once per epoch.

Random draws come from the ``generator`` the dataset passes (seeded per epoch and item), so a resumed run sees the
same augmentation. Other ``tv_tensors`` in the target (``Mask``) follow the image; other keys pass through.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

__all__ = ["DetectionTransform", "EvalTransform", "LargeScaleJitter", "eval_transforms", "train_transforms"]


def _geometric_keys(target: dict) -> list[str]:
    from torchvision import tv_tensors

    return [k for k, v in target.items() if isinstance(v, (tv_tensors.BoundingBoxes, tv_tensors.Mask))]


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


class DetectionTransform:
    """Base of our detection transforms: ``transform(image, target, *, generator=None, counts=None)``.

    ``image`` is a ``tv_tensors.Image`` float (3, H, W) in 0..1 and ``target`` holds ``boxes``
    (``tv_tensors.BoundingBoxes``) and ``labels``; ``counts`` (a Counter) receives the boxes clipped / dropped.
    """

    def __call__(self, image: torch.Tensor, target: dict[str, Any], *, generator: torch.Generator | None = None,
                 counts: Counter | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError


class EvalTransform(DetectionTransform):
    """Evaluation: the image at its own size (the detector resizes it and maps its boxes back)."""

    def __call__(self, image: torch.Tensor, target: dict[str, Any], *, generator: torch.Generator | None = None,
                 counts: Counter | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        return image, target

    def __repr__(self) -> str:
        return "EvalTransform()"


class LargeScaleJitter(DetectionTransform):
    """Photometric jitter, flip, scale jitter and a fixed-size crop / pad (see the module docstring).

    Args:
        size: Side of the square output (the recipe: 1024).
        scale_range: Range of the random scale of ``size`` the image is fitted into.
        flip: Random horizontal flip.
        brightness: Brightness factor drawn from ``1 +- brightness`` (0: off).
        contrast: Contrast factor drawn from ``1 +- contrast`` (0: off).
        pad_value: Gray (0..1) of the padding; None: the model's mean (``IMAGE_MEAN``).
        min_size: Boxes narrower or lower than this (pixels) after the crop are dropped.
    """

    def __init__(self, size: int, scale_range: tuple[float, float] = (0.1, 2.0), flip: bool = True,
                 brightness: float = 0.0, contrast: float = 0.0, pad_value: float | None = None,
                 min_size: float = 1.0) -> None:
        if size < 1 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"size must be >= 1 and scale_range 0 < low <= high, got {size}, {scale_range}")
        if pad_value is None:
            from unip_hub.integrations.torchvision import IMAGE_MEAN

            pad_value = float(IMAGE_MEAN[0])
        self.size, self.scale_range, self.flip = int(size), (float(scale_range[0]), float(scale_range[1])), flip
        self.brightness, self.contrast, self.pad_value, self.min_size = brightness, contrast, pad_value, min_size

    def __repr__(self) -> str:
        return (f"LargeScaleJitter(size={self.size}, scale_range={self.scale_range}, flip={self.flip}, "
                f"brightness={self.brightness}, contrast={self.contrast})")

    def __call__(self, image: torch.Tensor, target: dict[str, Any], *, generator: torch.Generator | None = None,
                 counts: Counter | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        from torchvision import tv_tensors
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as F

        counts = Counter() if counts is None else counts
        target = dict(target)
        keys = _geometric_keys(target)
        channels = image.shape[0]
        gray = channels == 3 and torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
        if gray:  # the 3 copies of one gray image: transform it once, copy it at the end (3x less work)
            image = tv_tensors.Image(image[:1])  # (1, H, W)
        if self.brightness or self.contrast:
            plain = image.as_subclass(torch.Tensor)
            if self.brightness:
                plain = F.adjust_brightness(plain, _uniform(1 - self.brightness, 1 + self.brightness, generator))
            if self.contrast:
                plain = F.adjust_contrast(plain, _uniform(1 - self.contrast, 1 + self.contrast, generator))
            image = tv_tensors.Image(plain)
        if self.flip and float(torch.rand((), generator=generator)) < 0.5:
            image = F.horizontal_flip(image)
            target.update({k: F.horizontal_flip(target[k]) for k in keys})
        height, width = image.shape[-2:]
        scale = _uniform(*self.scale_range, generator)
        factor = min(self.size * scale / height, self.size * scale / width)
        new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
        image = F.resize(image, [new_h, new_w], antialias=True)
        target.update({k: F.resize(target[k], [new_h, new_w]) for k in keys})
        top = int(torch.randint(0, max(0, new_h - self.size) + 1, (), generator=generator))
        left = int(torch.randint(0, max(0, new_w - self.size) + 1, (), generator=generator))
        crop_h, crop_w = min(self.size, new_h - top), min(self.size, new_w - left)
        boxes = target["boxes"].as_subclass(torch.Tensor)  # (N, 4) XYXY before the crop
        outside = (boxes[:, 0] < left) | (boxes[:, 1] < top) | (boxes[:, 2] > left + crop_w) | \
            (boxes[:, 3] > top + crop_h)  # (N,)
        padding = [0, 0, self.size - crop_w, self.size - crop_h]  # left, top, right, bottom
        image = F.pad(F.crop(image, top, left, crop_h, crop_w), padding, fill=self.pad_value)  # (C, size, size)
        if gray:
            image = tv_tensors.Image(image.expand(channels, -1, -1).contiguous())  # (3, size, size)
        target.update({k: F.pad(F.crop(target[k], top, left, crop_h, crop_w), padding, fill=0) for k in keys})
        target["_index"] = torch.arange(len(boxes))
        sanitize = v2.SanitizeBoundingBoxes(min_size=self.min_size, min_area=1.0,
                                            labels_getter=lambda inputs: (inputs[1]["labels"], inputs[1]["_index"]))
        image, target = sanitize(image, target)
        kept = target.pop("_index")  # (M,) indices of the boxes that survive
        counts["dropped"] += len(boxes) - len(kept)
        counts["clipped"] += int(outside[kept].sum())
        return image, target


def train_transforms(size: int, scale_range: tuple[float, float] = (0.1, 2.0), flip: bool = True,
                     photometric: bool = True) -> LargeScaleJitter:
    """The reference recipe's training augmentation at ``size`` (1024 there): LSJ with flip, plus brightness /
    contrast jitter of +-20% on gray when ``photometric``."""
    return LargeScaleJitter(size, scale_range, flip, 0.2 if photometric else 0.0, 0.2 if photometric else 0.0)


def eval_transforms() -> EvalTransform:
    """Evaluation transform: images at their own size (boxes stay in the annotation's pixels)."""
    return EvalTransform()
