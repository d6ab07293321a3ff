"""A preview picture of a segmented raster for a person to look at: the decimated raster (temperatures in a
colormap with a colour bar, or the gray input), the class mask as outlines and a light fill, a class legend and the
hotspot outlines (cyan), drawn with :func:`unip_hub.inference.render.thermal_overlay`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unip_hub.geo.raster import RasterInfo, read_decimated
from unip_hub.geo.scaling import RasterReading, tile_frame

__all__ = ["HOTSPOT_COLOUR", "render_preview"]

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

    from unip_hub.data.readers import percentile_bounds
    from unip_hub.inference.render import overlay, thermal_overlay

    values, valid = read_decimated(ds, info, max_side)  # (h, w)
    frame = tile_frame(values, valid, reading, info.source)
    mask = read_decimated(mask_ds, _mask_info(mask_ds, info), max_side)[0].astype(np.int64)  # (h, w)
    mask[(mask >= len(palette)) | ~valid] = 0  # nodata: shown as class 0 over a black raster
    if frame.celsius is not None:
        bounds = percentile_bounds(frame.celsius, 0.5, 100.0)  # up to the hottest pixel: hotspots stand out
        picture = thermal_overlay(frame.celsius, mask, palette, class_names, bounds)
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
