"""Turning class-index maps into pictures: palettes, colour masks, overlays on the thermal input, and the
radiometric overlay (temperatures in a colormap, class outlines, a temperature colour bar and a class legend)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np


def palette_array(num_classes: int, palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """(K, 3) uint8 colours: ``palette`` when given (a dataset's), else the PASCAL-VOC scheme (index 0 black)."""
    if palette is None:
        from unip_hub.data.palette import make_palette

        palette = make_palette(num_classes)
    colours = np.asarray(palette, dtype=np.int64)
    if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) < num_classes:
        raise ValueError(f"palette must hold at least {num_classes} RGB triples, got shape {colours.shape}")
    if colours.min() < 0 or colours.max() > 255:
        raise ValueError("palette colours must be in 0..255")
    return colours[:num_classes].astype(np.uint8)


def check_classes(mask: np.ndarray, palette: np.ndarray) -> None:
    """Raises ``ValueError`` when ``mask`` holds a class index outside the ``palette`` (K, 3)."""
    if mask.size and (mask.min() < 0 or mask.max() >= len(palette)):
        raise ValueError(f"mask has classes {int(mask.min())}..{int(mask.max())} but the palette only {len(palette)}")


def colorize(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class-index map (H, W) -> RGB (H, W, 3) uint8 with ``palette`` (K, 3)."""
    mask = np.asarray(mask)
    check_classes(mask, palette)
    return palette[mask]


def overlay(gray: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The colour mask blended over the gray input: ``(1 - alpha) * gray + alpha * colour``, RGB (H, W, 3) uint8."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    gray = np.asarray(gray)
    if gray.shape != np.asarray(mask).shape:
        raise ValueError(f"image {gray.shape} and mask {np.asarray(mask).shape} differ in size")
    mask = np.asarray(mask)
    check_classes(mask, palette)
    if gray.dtype != np.uint8:  # any other real image: the formula itself
        base = np.repeat(gray[..., None].astype(np.float32), 3, axis=-1)  # (H, W) -> (H, W, 3)
        blend = (1.0 - alpha) * base + alpha * palette[mask].astype(np.float32)
        return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    table = _blend_table(None, np.ascontiguousarray(palette, np.uint8).tobytes(), len(palette), float(alpha))
    return np.take(table, gray.astype(np.intp) * len(palette) + mask, axis=0)  # (H, W, 3), the formula per level


def colormap_lut(name: str = "inferno") -> np.ndarray:
    """(256, 3) uint8 colours of a matplotlib colormap (``thermal`` / ``plot`` extra); a gray ramp without it."""
    return _lut(name).copy()


@lru_cache(maxsize=8)
def _lut(name: str) -> np.ndarray:
    """:func:`colormap_lut`, computed once per name (read-only; video frames share it)."""
    try:
        from matplotlib import colormaps
    except ImportError:
        return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    return np.rint(colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def class_edges(mask: np.ndarray) -> np.ndarray:
    """Boolean (H, W): pixels whose right or lower neighbour has another class (the outlines of the regions)."""
    edges = np.zeros(mask.shape, dtype=bool)
    edges[:, :-1] |= mask[:, 1:] != mask[:, :-1]
    edges[:-1, :] |= mask[1:, :] != mask[:-1, :]
    return edges


def _tick_labels(bounds: tuple[float, float]) -> tuple[str, str, str]:
    """The colour bar's three tick texts (low, middle, high)."""
    lo, hi = bounds
    return tuple(f"{lo + frac * (hi - lo):.1f}\u00b0C" for frac in (0.0, 0.5, 1.0))  # type: ignore[return-value]


@lru_cache(maxsize=32)
def _panel(height: int, labels: tuple[str, str, str], cmap: str, entries: tuple[tuple[str, tuple], ...]
           ) -> np.ndarray:
    """The side panel as RGB uint8, drawn once per distinct look (video frames mostly repeat the previous one)."""
    panel = np.asarray(_legend_and_bar(height, labels, _lut(cmap), list(entries)))
    panel.setflags(write=False)
    return panel


def _legend_and_bar(height: int, labels: tuple[str, str, str], lut: np.ndarray, entries: list[tuple[str, tuple]]
                    ) -> Any:
    """The side panel: a temperature colour bar (hot at the top) with three ticks, then the class legend."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    rows = max(height, 14 * len(entries) + 8, 60)
    width = 66 + max([16 + 7 * len(name) for name, _ in entries] + [0]) + 6
    panel = Image.new("RGB", (width, rows), (255, 255, 255))
    bar = lut[np.linspace(255, 0, rows - 8).astype(np.uint8)]  # (rows - 8, 3), hot at the top
    panel.paste(Image.fromarray(np.repeat(bar[:, None], 10, axis=1)), (4, 4))
    draw = ImageDraw.Draw(panel)
    for frac, label in zip((0.0, 0.5, 1.0), labels):
        y = 4 + round((1 - frac) * (rows - 9))
        draw.line([(14, y), (17, y)], fill=(0, 0, 0))
        draw.text((21, min(max(y - 6, 0), rows - 12)), label, fill=(0, 0, 0), font=font)
    for i, (name, colour) in enumerate(entries):
        y = 4 + 14 * i
        draw.rectangle([66, y, 76, y + 10], fill=tuple(int(v) for v in colour), outline=(0, 0, 0))
        draw.text((80, y - 1), name, fill=(0, 0, 0), font=font)
    return panel


def thermal_overlay(celsius: np.ndarray, mask: np.ndarray, palette: np.ndarray, class_names: Sequence[str] | None,
                    bounds: tuple[float, float] | None = None, alpha: float = 0.3, cmap: str = "inferno",
                    all_classes: bool = False, levels: np.ndarray | None = None) -> np.ndarray:
    """Temperatures in a colormap, the classes as outlines and a light fill, a colour bar and a class legend.

    Args:
        celsius: Temperatures (H, W) in degC.
        mask: Class indices (H, W).
        palette: (K, 3) uint8 class colours.
        class_names: Names shown in the legend (``class_<i>`` where missing).
        bounds: Temperatures at the ends of the colour bar; the 0.5th / 99.5th percentiles by default.
        alpha: Opacity of the class fill (outlines are opaque).
        cmap: matplotlib colormap of the temperatures.
        all_classes: List every class in the legend, not only those present (a constant size for video frames).
        levels: The colormap level (H, W) uint8 of every pixel, ``scale_to_uint8(celsius, *bounds)``, when the
            caller has it (:func:`unip_hub.data.readers.celsius_levels`: through the counts, for video frames).

    Returns:
        RGB uint8 (max(H, legend), W + panel, 3): the image at its own size on the left, the panel on the right.
    """
    from unip_hub.data.readers import percentile_bounds, scale_to_uint8

    mask = np.asarray(mask)
    check_classes(mask, palette)
    lo_hi = bounds or percentile_bounds(celsius) or (0.0, 1.0)
    table = _blend_table(cmap, np.ascontiguousarray(palette, np.uint8).tobytes(), len(palette), float(alpha))
    level = scale_to_uint8(celsius, *lo_hi) if levels is None else levels  # (H, W) uint8 colormap index
    index = level.astype(np.intp) * len(palette) + mask  # (H, W) row of the (256 * K, 3) blend table
    edges = class_edges(mask)
    index[edges] = mask[edges].astype(np.intp) + 256 * len(palette)  # outlines: the class colours (rows after)
    names = list(class_names or [])
    shown = range(len(palette)) if all_classes else np.unique(mask).tolist()
    entries = tuple((names[c] if c < len(names) else f"class_{c}", tuple(int(v) for v in palette[c]))
                    for c in shown)
    panel = _panel(mask.shape[0], _tick_labels(lo_hi), cmap, entries)
    height = max(mask.shape[0], panel.shape[0])
    canvas = np.full((height, mask.shape[1] + panel.shape[1], 3), 255, np.uint8)
    np.take(table, index, axis=0, out=canvas[: mask.shape[0], : mask.shape[1]])  # (H, W, 3)
    canvas[: panel.shape[0], mask.shape[1]:] = panel
    return canvas


@lru_cache(maxsize=16)
def _blend_table(cmap: str | None, palette: bytes, classes: int, alpha: float) -> np.ndarray:
    """(256 * K + K, 3) uint8: row ``g * K + c`` = level g of the colormap (``None``: gray g itself) blended with
    class c (the float formula of :func:`overlay` / :func:`thermal_overlay`, rounded), then the K plain class
    colours (the outlines)."""
    colours = np.frombuffer(palette, np.uint8).reshape(classes, 3)
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1) if cmap is None else _lut(cmap)
    lut = levels.astype(np.float32)[:, None]  # (256, 1, 3)
    blend = (1.0 - alpha) * lut + alpha * colours.astype(np.float32)[None]  # (256, K, 3) float32
    table = np.concatenate([np.clip(np.rint(blend), 0, 255).astype(np.uint8).reshape(-1, 3), colours])
    table.setflags(write=False)
    return table
