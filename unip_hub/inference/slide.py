"""Whole-image and sliding-window inference, as mmseg's ``whole_inference`` / ``slide_inference``.

Sliding windows: ``crop`` x ``crop`` windows every ``stride`` pixels; the last row/column of windows is moved back
so it ends at the image border (windows are clipped to the image, never padded out of it); logits are summed into
a full-size map and divided by the count of windows covering each pixel. Every window has the same size
(``min(crop, H)`` x ``min(crop, W)``), so windows are run ``batch_windows`` at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


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
    crop: int | tuple[int, int] = 512,
    stride: int | tuple[int, int] = 341,
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
