"""Image-size arithmetic shared by the data pipelines and the model's test-time rescaling (plain ints, no torch)."""

from __future__ import annotations

__all__ = ["rescale_size"]


def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """Size ``(H, W)`` of an image rescaled to fit ``scale`` (long edge, short edge) keeping its aspect ratio.

    This is mmseg's ``Resize(keep_ratio=True)``: the factor is the largest that keeps the long side within the
    long edge and the short side within the short edge, and sides are rounded half up.
    """
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)
