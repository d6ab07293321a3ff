"""Whole-image and sliding-window inference on tensors, as mmseg's ``whole_inference`` / ``slide_inference``.

Pure tensor code (no file I/O, no readers), shared by :class:`~unip_hub.models.segmenter.Segmenter` and the
predictor in :mod:`unip_hub.inference.predictor`, which plugs its own model call (eager, compiled, a runtime)
in as ``logits_fn``.

Sliding windows: ``crop`` x ``crop`` windows every ``stride`` pixels; the last row/column of windows is moved back
so it ends at the image border (windows are clipped to the image, never padded out of it); logits are summed into
a full-size map and divided by the count of windows covering each pixel. Every window has the same size
(``min(crop, H)`` x ``min(crop, W)``), so windows are run ``batch_windows`` at a time.

Test-time rescaling (``scale``): the image is fitted inside ``(long, short)`` keeping its aspect ratio (UNIP's
test pipeline, (2048, 512)), and the logits are resized back to the input size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unip_hub.constants import SLIDE_CROP, SLIDE_STRIDE
from unip_hub.utils.geometry import rescale_size

__all__ = ["MODES", "InferenceOptions", "LogitsFn", "infer_logits", "rescale_size", "slide_logits", "window_boxes"]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
MODES = ("whole", "slide")


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a segmenter over an image; the defaults are UNIP's evaluation except ``mode``.

    Attributes:
        mode: ``"whole"`` (one pass, padded to a multiple of 16) or ``"slide"`` (mmseg sliding windows).
        crop_size: Window side for ``"slide"`` (or ``(h, w)``).
        stride: Window step for ``"slide"`` (or ``(h, w)``).
        batch_windows: Windows per forward pass for ``"slide"`` (memory vs. speed; results do not depend on it).
        scale: ``(long, short)`` edge to fit the image into first (UNIP's test pipeline: (2048, 512)); the logits
            are resized back, so the output always has the input's size. ``None`` = native resolution.
    """

    mode: str = "whole"
    crop_size: int | tuple[int, int] = SLIDE_CROP
    stride: int | tuple[int, int] = SLIDE_STRIDE
    batch_windows: int = 4
    scale: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'whole' or 'slide', got {self.mode!r}")
        if min(*_pair(self.crop_size), *_pair(self.stride)) <= 0:
            raise ValueError(f"crop {self.crop_size} and stride {self.stride} must be positive")
        if self.batch_windows < 1:
            raise ValueError(f"batch_windows must be >= 1, got {self.batch_windows}")
        if self.scale is not None and (len(self.scale) != 2 or min(self.scale) <= 0):
            raise ValueError(f"scale needs two positive edges (long, short), got {self.scale}")


def window_boxes(height: int, width: int, crop: int | tuple[int, int], stride: int | tuple[int, int]
                 ) -> list[tuple[int, int, int, int]]:
    """The (y1, y2, x1, x2) windows of mmseg's slide inference over a ``height`` x ``width`` image."""
    (ch, cw), (sh, sw) = _pair(crop), _pair(stride)
    if min(ch, cw, sh, sw) <= 0:
        raise ValueError(f"crop {crop} and stride {stride} must be positive")
    rows = max(height - ch + sh - 1, 0) // sh + 1
    cols = max(width - cw + sw - 1, 0) // sw + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + ch, height), min(c * sw + cw, width)
            boxes.append((max(y2 - ch, 0), y2, max(x2 - cw, 0), x2))
    return boxes


def slide_logits(
    logits_fn: LogitsFn,
    x: torch.Tensor,
    num_classes: int,
    crop: int | tuple[int, int] = SLIDE_CROP,
    stride: int | tuple[int, int] = SLIDE_STRIDE,
    batch_windows: int = 4,
) -> torch.Tensor:
    """Averaged window logits of images ``x`` (B, C, H, W) -> (B, K, H, W).

    Args:
        logits_fn: Maps a batch of windows (n, C, h, w) to logits (n, K, h, w) at the window size.
        x: Normalised images.
        num_classes: K.
        crop: Window side (or (h, w)).
        stride: Step between windows (or (h, w)).
        batch_windows: Windows per forward pass (memory vs. speed; results do not depend on it).
    """
    if batch_windows < 1:
        raise ValueError(f"batch_windows must be >= 1, got {batch_windows}")
    b, _, h, w = x.shape
    boxes = window_boxes(h, w, crop, stride)
    out = x.new_zeros(b, num_classes, h, w)
    count = x.new_zeros(1, 1, h, w)
    for start in range(0, len(boxes), batch_windows):
        group = boxes[start:start + batch_windows]
        crops = torch.cat([x[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in group], dim=0)  # (n * B, C, h_c, w_c)
        logits = logits_fn(crops).float()  # (n * B, K, h_c, w_c)
        for j, (y1, y2, x1, x2) in enumerate(group):
            out[:, :, y1:y2, x1:x2] += logits[j * b:(j + 1) * b]
            count[:, :, y1:y2, x1:x2] += 1
    return out / count


def infer_logits(logits_fn: LogitsFn, x: torch.Tensor, num_classes: int, options: InferenceOptions,
                 align_corners: bool = False) -> torch.Tensor:
    """Logits (B, K, H, W) of normalised images ``x`` (B, C, H, W) with ``options`` (rescale, whole or slide).

    Args:
        logits_fn: The model call: (n, C, h, w) -> (n, K, h, w) at the input size (any h, w).
        x: Normalised images.
        num_classes: K.
        options: Mode, windows and test-time rescaling.
        align_corners: ``align_corners`` of the resize back to the input size after ``scale``.
    """
    size = tuple(x.shape[-2:])
    if options.scale is not None:  # the test pipeline: fit (long, short) keeping the aspect ratio
        x = F.interpolate(x, size=rescale_size(*size, options.scale), mode="bilinear", align_corners=False)
    if options.mode == "whole":
        logits = logits_fn(x)  # (B, K, h, w)
    else:
        logits = slide_logits(logits_fn, x, num_classes, options.crop_size, options.stride, options.batch_windows)
    if tuple(logits.shape[-2:]) != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=align_corners)
    return logits
