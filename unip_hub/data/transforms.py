"""Segmentation data pipelines of UNIP's LL-FPN fine-tuning (reference section 4), written after mmseg 0.11.

Training: random rescale of ``scale`` (2048, 512) by a ratio in 0.5-2.0 keeping the aspect ratio, random
512x512 crop in which one class covers at most 75 % of the labelled pixels (retried up to 10 times), horizontal
flip with probability 0.5, mmseg's ``PhotoMetricDistortion``, normalisation of the 0-255 gray copied to three
channels (mean 96.9255, std 47.8976), padding to the crop size. Test: rescale to fit (2048, 512), normalise.

Images stay ``(H, W)`` uint8 until normalisation. Resizing uses torch (bilinear without antialiasing for images,
nearest for labels), which is how OpenCV resizes inside mmcv. As in mmseg, padding comes after normalisation, so
the padded image pixels are 0 in normalised units (the mean gray) and the padded label pixels are 255 (ignored).
All randomness comes from the ``numpy.random.Generator`` passed in, so a seed makes a pipeline deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from unip_hub.constants import PRETRAIN_MEAN, PRETRAIN_STD, SEG_MEAN, SEG_STD
from unip_hub.utils.geometry import rescale_size

__all__ = [
    "PRETRAIN_MEAN",
    "PRETRAIN_STD",
    "SEG_MEAN",
    "SEG_STD",
    "SegTransformConfig",
    "TestPipeline",
    "TrainPipeline",
    "normalize",
    "pad_to",
    "photometric_distortion",
    "random_crop",
    "rescale_size",
    "resize_image",
    "resize_label",
]

@dataclass
class SegTransformConfig:
    """Settings of the segmentation pipelines; the defaults are the UNIP recipe.

    Attributes:
        crop_size: Training crop ``(height, width)``.
        scale: Rescale target ``(long, short)`` edge; the image is fitted inside it keeping its aspect ratio.
        ratio_range: Range of the random factor applied to ``scale`` during training.
        cat_max_ratio: Largest share of the labelled crop pixels one class may cover (1.0 disables the check).
        crop_retries: How many crops are tried against ``cat_max_ratio`` before the next one is taken as is.
        flip_prob: Probability of a horizontal flip.
        photometric: Whether to apply the photometric distortion.
        brightness_delta: Largest brightness shift, in gray levels.
        contrast_range: Range of the contrast factor.
        mean: Normalisation mean on the 0-255 scale.
        std: Normalisation standard deviation on the 0-255 scale.
        pad_value: Value of padded image pixels (after normalisation).
        ignore_index: Label of padded pixels, and label left out of ``cat_max_ratio``.
    """

    crop_size: tuple[int, int] = (512, 512)
    scale: tuple[int, int] = (2048, 512)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    crop_retries: int = 10
    flip_prob: float = 0.5
    photometric: bool = True
    brightness_delta: float = 32.0
    contrast_range: tuple[float, float] = (0.5, 1.5)
    mean: float = SEG_MEAN
    std: float = SEG_STD
    pad_value: float = 0.0
    ignore_index: int = 255


def resize_image(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (half-pixel centres, no antialiasing) of a uint8 ``(H, W)`` image to ``size`` ``(H, W)``."""
    if gray.shape == tuple(size):
        return gray
    x = torch.from_numpy(np.ascontiguousarray(gray)).float()[None, None]  # (1, 1, H, W)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)  # (1, 1, h, w)
    return x[0, 0].round_().clamp_(0, 255).to(torch.uint8).numpy()


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map ``(H, W)`` to ``size`` ``(H, W)``, keeping its dtype."""
    if label.shape == tuple(size):
        return label
    x = torch.from_numpy(label.astype(np.float64))[None, None]  # (1, 1, H, W), exact for any label value
    x = F.interpolate(x, size=size, mode="nearest")  # (1, 1, h, w)
    return x[0, 0].numpy().astype(label.dtype)


def _crop_ok(label: np.ndarray, cat_max_ratio: float, ignore_index: int) -> bool:
    classes, counts = np.unique(label, return_counts=True)
    counts = counts[classes != ignore_index]
    return len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio


def random_crop(
    gray: np.ndarray,
    label: np.ndarray | None,
    crop_size: tuple[int, int],
    rng: np.random.Generator,
    cat_max_ratio: float = 0.75,
    ignore_index: int = 255,
    retries: int = 10,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Random crop of at most ``crop_size`` in which no class covers ``cat_max_ratio`` or more (mmseg rule).

    A crop passes when it holds at least two labelled classes and the largest covers less than
    ``cat_max_ratio`` of the labelled pixels (``ignore_index`` not counted). After ``retries`` failures the next
    random crop is used unchecked, as mmseg does.
    """
    height, width = gray.shape
    crop_h, crop_w = crop_size

    def box() -> tuple[int, int]:
        return int(rng.integers(0, max(height - crop_h, 0) + 1)), int(rng.integers(0, max(width - crop_w, 0) + 1))

    top, left = box()
    if label is not None and cat_max_ratio < 1.0:
        for _ in range(retries):
            if _crop_ok(label[top : top + crop_h, left : left + crop_w], cat_max_ratio, ignore_index):
                break
            top, left = box()
    window = (slice(top, top + crop_h), slice(left, left + crop_w))
    return gray[window], None if label is None else label[window]


def photometric_distortion(
    gray: np.ndarray,
    rng: np.random.Generator,
    brightness_delta: float = 32.0,
    contrast_range: tuple[float, float] = (0.5, 1.5),
) -> np.ndarray:
    """mmseg's ``PhotoMetricDistortion`` on a uint8 gray image.

    Brightness (shift in ``[-delta, delta]``, probability 0.5), then contrast (factor in ``contrast_range``,
    probability 0.5) either before or after the colour steps, chosen at random. Each step clips to 0..255 and
    truncates to uint8 like mmseg. The saturation and hue steps are left out: on gray copied to three channels
    the saturation is 0, so they change nothing.
    """

    def convert(image: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
        return np.clip(image.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    if rng.integers(2):
        gray = convert(gray, beta=rng.uniform(-brightness_delta, brightness_delta))
    rng.integers(2)  # mmseg's mode: contrast before or after the colour steps, the same thing on gray
    if rng.integers(2):
        gray = convert(gray, alpha=rng.uniform(*contrast_range))
    return gray


def normalize(gray: np.ndarray, mean: float = SEG_MEAN, std: float = SEG_STD, channels: int = 3) -> torch.Tensor:
    """The one gray -> model input conversion: ``(gray - mean) / std`` copied to ``channels``: float32 (C, H, W).

    Args:
        gray: uint8 (or any real) ``(H, W)`` image on the 0-255 scale.
        mean: Mean on the 0-255 scale (fine-tuning: ``SEG_MEAN``; backbones: ``PRETRAIN_MEAN * 255``).
        std: Standard deviation on the 0-255 scale.
        channels: Input channels of the model (3 for the UNIP ViTs, gray copied).
    """
    gray = np.asarray(gray)
    if gray.dtype == np.uint8:  # a lookup of the 256 levels (no torch kernels: cheap in a video's reader thread)
        return torch.from_numpy(np.repeat(_levels(float(mean), float(std))[gray][None], channels, axis=0))
    x = (torch.from_numpy(np.ascontiguousarray(gray)).float() - mean) / std  # (H, W)
    return x.unsqueeze(0).repeat(channels, 1, 1)  # (C, H, W)


@lru_cache(maxsize=8)
def _levels(mean: float, std: float) -> np.ndarray:
    """(256,) float32: :func:`normalize`'s formula applied to every 8-bit level (read-only)."""
    table = ((torch.arange(256, dtype=torch.float32) - mean) / std).numpy()
    table.setflags(write=False)
    return table


def pad_to(
    image: torch.Tensor,
    label: torch.Tensor | None,
    size: tuple[int, int],
    pad_value: float = 0.0,
    label_pad: int = 255,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pad ``image`` ``(C, H, W)`` and ``label`` ``(H, W)`` at the bottom and right up to ``size`` ``(H, W)``."""
    pad_h, pad_w = max(size[0] - image.shape[-2], 0), max(size[1] - image.shape[-1], 0)
    if pad_h == 0 and pad_w == 0:
        return image, label
    image = F.pad(image, (0, pad_w, 0, pad_h), value=pad_value)  # (C, H', W')
    if label is not None:
        label = F.pad(label, (0, pad_w, 0, pad_h), value=label_pad)  # (H', W')
    return image, label


def _label_tensor(label: np.ndarray | None) -> torch.Tensor | None:
    return None if label is None else torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))


class TrainPipeline:
    """The training pipeline: rescale, crop, flip, photometric distortion, normalise, pad.

    Args:
        config: Pipeline settings; the UNIP recipe by default.
    """

    def __init__(self, config: SegTransformConfig | None = None) -> None:
        self.config = config or SegTransformConfig()

    def __call__(
        self, gray: np.ndarray, label: np.ndarray | None = None, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Transform one sample.

        Args:
            gray: uint8 image ``(H, W)``.
            label: Class indices ``(H, W)`` or None.
            rng: Source of randomness; a fresh unseeded generator when None.

        Returns:
            Image float32 ``(3, crop_h, crop_w)`` and label int64 ``(crop_h, crop_w)`` (or None).
        """
        cfg = self.config
        rng = rng if rng is not None else np.random.default_rng()
        if label is not None and label.shape != gray.shape:
            raise ValueError(f"image shape {gray.shape} and label shape {label.shape} differ")
        ratio = rng.uniform(*cfg.ratio_range)
        target = rescale_size(*gray.shape, (int(cfg.scale[0] * ratio), int(cfg.scale[1] * ratio)))
        gray = resize_image(gray, target)
        label = None if label is None else resize_label(label, target)
        gray, label = random_crop(
            gray, label, cfg.crop_size, rng, cfg.cat_max_ratio, cfg.ignore_index, cfg.crop_retries
        )
        if rng.random() < cfg.flip_prob:
            gray = gray[:, ::-1]
            label = None if label is None else label[:, ::-1]
        if cfg.photometric:
            gray = photometric_distortion(gray, rng, cfg.brightness_delta, cfg.contrast_range)
        image = normalize(gray, cfg.mean, cfg.std)  # (3, h, w)
        return pad_to(image, _label_tensor(label), cfg.crop_size, cfg.pad_value, cfg.ignore_index)


class TestPipeline:
    """The test pipeline: rescale to fit ``config.scale`` keeping the aspect ratio, then normalise.

    As in mmseg's evaluation, the label keeps its original size by default (predictions are resized back to it).

    Args:
        config: Pipeline settings; only ``scale``, ``mean`` and ``std`` are used.
        resize_label: Resize the label with the image (nearest) instead of keeping its original size.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, config: SegTransformConfig | None = None, resize_label: bool = False) -> None:
        self.config = config or SegTransformConfig()
        self.resize_label = resize_label

    def __call__(
        self, gray: np.ndarray, label: np.ndarray | None = None, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Transform one sample (``rng`` is accepted for a common signature and unused)."""
        target = rescale_size(*gray.shape, self.config.scale)
        image = normalize(resize_image(gray, target), self.config.mean, self.config.std)  # (3, h, w)
        if label is not None and self.resize_label:
            label = resize_label(label, target)
        return image, _label_tensor(label)
