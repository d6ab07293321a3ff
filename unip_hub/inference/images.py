"""Writing class maps and pictures as PNG files, atomically (shared by :mod:`~unip_hub.inference.outputs` and
:mod:`~unip_hub.inference.video`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from unip_hub.utils.atomic import atomic_path

__all__ = ["index_image", "write_png_atomic"]


def write_png_atomic(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Saves an (H, W) uint8/uint16 or (H, W, 3) uint8 array as PNG atomically."""
    from PIL import Image

    image = Image.fromarray(array, "I;16") if array.dtype == np.uint16 else Image.fromarray(array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def index_image(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices as an 8-bit (K <= 256) or 16-bit array ready for :func:`write_png_atomic`."""
    return mask.astype(np.uint8 if num_classes <= 256 else np.uint16)
