"""Preview pictures of a raster's results for a person to look at, over the decimated raster (temperatures in a
colormap with a colour bar, or the gray input): a segmented raster's class mask as outlines and a light fill, a
class legend and the hotspot outlines (cyan), drawn with :func:`unip_hub.inference.render.thermal_overlay`; a
detected raster's boxes with class, score and hottest temperature, drawn as ``unip detect`` draws them
(:func:`unip_hub.detection.outputs.render_detections`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unip_hub.geo.raster import RasterInfo, read_decimated
from unip_hub.geo.scaling import RasterReading, tile_frame

__all__ = ["HOTSPOT_COLOUR", "render_detection_preview", "render_preview"]

HOTSPOT_COLOUR = (0, 255, 255)


def render_preview(ds: Any, info: RasterInfo, reading: RasterReading, predictor: Any, mask_ds: Any,
                   palette: np.ndarray, class_names: Sequence[str] | None, hotspots: Sequence[Any],
                   max_side: int = 1024) -> np.ndarray:
    """RGB uint8 (h, w + panel, 3) of the raster at most ``max_side`` pixels a side.

    Args:
        ds: The source dataset.
        info: Its description.
        reading: The raster-wide reading (unit, bounds).
        predictor: Its ``to_gray`` scales rasters without temperatures.
        mask_ds: The finished class mask (same size as ``ds``).
        palette: (K, 3) uint8 class colours.
        class_names: Legend names.
        hotspots: Hotspot polygons in pixel coordinates of the full raster.
        max_side: Longest side of the picture (without the panel).
    """
    from PIL import Image, ImageDraw

    from unip_hub.inference.render import overlay, thermal_overlay

    values, valid = read_decimated(ds, info, max_side)  # (h, w)
    frame = tile_frame(values, valid, reading, info.source)
    mask = read_decimated(mask_ds, _mask_info(mask_ds, info), max_side)[0].astype(np.int64)  # (h, w)
    mask[(mask >= len(palette)) | ~valid] = 0  # nodata: shown as class 0 over a black raster
    if frame.celsius is not None:
        picture = thermal_overlay(frame.celsius, mask, palette, class_names, _bounds(frame.celsius))
    else:
        picture = overlay(predictor.to_gray(frame, reading.bounds), mask, palette)
    if hotspots:
        image = Image.fromarray(picture)
        draw = ImageDraw.Draw(image)
        sy, sx = mask.shape[0] / info.height, mask.shape[1] / info.width
        for polygon in hotspots:
            for ring in [polygon.exterior, *polygon.interiors]:
                xy = [(x * sx, y * sy) for x, y in ring.coords]
                draw.line(xy, fill=HOTSPOT_COLOUR, width=2)
        picture = np.asarray(image)
    return picture


def _mask_info(mask_ds: Any, info: RasterInfo) -> RasterInfo:
    from dataclasses import replace

    return replace(info, band=1, nodata=mask_ds.nodata, dtype=mask_ds.dtypes[0], source=str(mask_ds.name))


def _bounds(celsius: np.ndarray) -> tuple[float, float] | None:
    """Colour bar ends: up to the hottest pixel, so hotspots stand out."""
    from unip_hub.data.readers import percentile_bounds

    return percentile_bounds(celsius, 0.5, 100.0)


def render_detection_preview(ds: Any, info: RasterInfo, reading: RasterReading, predictor: Any,
                             rows: Sequence[dict[str, Any]], max_side: int = 1024) -> np.ndarray:
    """RGB uint8 of the raster at most ``max_side`` pixels a side with the detections drawn (a colour bar and class
    legend beside temperatures).

    Args:
        ds: The source dataset.
        info: Its description.
        reading: The raster-wide reading (unit, bounds).
        predictor: A :class:`~unip_hub.detection.predict.DetectionPredictor` (gray scaling, class names, colours).
        rows: The detections (``x0`` .. ``y1`` in raster pixels, ``class``, ``class_name``, ``score``, ``t_max``).
        max_side: Longest side of the picture (without the panel).
    """
    from unip_hub.detection.outputs import class_colours, render_detections

    values, valid = read_decimated(ds, info, max_side)  # (h, w)
    frame = tile_frame(values, valid, reading, info.source)
    gray = predictor.to_gray(frame, reading.bounds)  # (h, w) uint8
    gray[~valid] = 0
    sy, sx = values.shape[0] / info.height, values.shape[1] / info.width
    drawn = [{"x0": r["x0"] * sx, "y0": r["y0"] * sy, "x1": r["x1"] * sx, "y1": r["y1"] * sy, "class": r["class"],
              "name": r["class_name"], "score": r["score"], "max": r["t_max"]} for r in rows]
    names = predictor.class_names
    colours = class_colours(predictor.model, len(names))
    bounds = _bounds(frame.celsius) if frame.celsius is not None else None
    return render_detections(frame, gray, drawn, colours, names, bounds=bounds)
