"""Turning class-index maps into pictures: palettes, colour masks and overlays on the thermal input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def palette_array(num_classes: int, palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """(K, 3) uint8 colours: ``palette`` when given (a dataset's), else the PASCAL-VOC scheme (index 0 black)."""
    if palette is None:
        from unip_hub.data.datasets import make_palette

        palette = make_palette(num_classes)
    colours = np.asarray(palette, dtype=np.int64)
    if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) < num_classes:
        raise ValueError(f"palette must hold at least {num_classes} RGB triples, got shape {colours.shape}")
    if colours.min() < 0 or colours.max() > 255:
        raise ValueError("palette colours must be in 0..255")
    return colours[:num_classes].astype(np.uint8)


def colorize(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class-index map (H, W) -> RGB (H, W, 3) uint8 with ``palette`` (K, 3)."""
    mask = np.asarray(mask)
    if mask.size and (mask.min() < 0 or mask.max() >= len(palette)):
        raise ValueError(f"mask has classes {int(mask.min())}..{int(mask.max())} but the palette only {len(palette)}")
    return palette[mask]


def overlay(gray: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The colour mask blended over the gray input: ``(1 - alpha) * gray + alpha * colour``, RGB (H, W, 3) uint8."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    gray = np.asarray(gray)
    if gray.shape != np.asarray(mask).shape:
        raise ValueError(f"image {gray.shape} and mask {np.asarray(mask).shape} differ in size")
    base = np.repeat(gray[..., None].astype(np.float32), 3, axis=-1)  # (H, W) -> (H, W, 3)
    blend = (1.0 - alpha) * base + alpha * colorize(mask, palette).astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
