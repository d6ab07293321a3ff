"""One input scaling for a whole raster: what every tile of an orthomosaic is scaled with.

The model's stored :class:`~unip_hub.data.scaling.InputScaling` is applied to the raster as if it were one image:
a temperature window is per pixel anyway; percentile bounds are computed once from a decimated read of the whole
raster (an overview when the file has one), never per tile, so neighbouring tiles get the same gray for the same
temperature and nothing changes at the seams. The float unit (degC or K, ``unit="auto"``) is decided once the same
way. Tiles are then :class:`~unip_hub.data.frame.Frame` objects built with that raster-wide reading.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from unip_hub.data.frame import Calibration, Frame
from unip_hub.geo.raster import RasterInfo, read_decimated

__all__ = ["RasterReading", "raster_reading", "tile_frame"]


@dataclass(frozen=True)
class RasterReading:
    """How every tile of one raster is read and scaled.

    Attributes:
        kind: The frame kind of the whole raster: ``"celsius"``, ``"kelvin"``, ``"counts"`` or ``"8-bit"``.
        calibration: The calibration with the unit fixed for the whole raster.
        bounds: Raster-wide values mapped to 0 / 255 (percentile scaling), ``None`` when the scaling needs none
            (a temperature window, 8-bit data).
        has_temperatures: Tiles carry degC (float rasters, or counts with ``counts_to_celsius``).
    """

    kind: str
    calibration: Calibration
    bounds: tuple[float, float] | None
    has_temperatures: bool


def tile_frame(values: np.ndarray, valid: np.ndarray, reading: RasterReading, source: str) -> Frame:
    """A tile's :class:`Frame` with the raster-wide reading: nodata pixels are NaN temperatures (and NaN values for
    float data, so the scaling leaves them black)."""
    from unip_hub.data.radiometric import read_radiometric

    if reading.kind in ("celsius", "kelvin"):
        data = np.where(valid, values.astype(np.float32, copy=False), np.float32(np.nan))  # (h, w)
        frame = read_radiometric(data, reading.calibration)
        return Frame(frame.values, frame.celsius, source, frame.kind, frame.params)
    if reading.kind == "8-bit":
        return Frame(values.astype(np.uint8, copy=False), None, source, "8-bit")
    celsius = None
    if reading.calibration.counts_to_celsius is not None:
        gain, offset = reading.calibration.counts_to_celsius
        celsius = np.where(valid, values * np.float32(gain) + np.float32(offset), np.float32(np.nan))
        celsius = celsius.astype(np.float32, copy=False)
    return Frame(values, celsius, source, "counts")


def raster_reading(ds: Any, info: RasterInfo, scaling: Any, calibration: Calibration, max_side: int = 2048
                   ) -> RasterReading:
    """The raster-wide reading of ``ds`` for a model read with ``scaling`` / ``calibration`` (a predictor's).

    Raises:
        GeoError: The file cannot be read.
        RadiometricError: The scaling needs temperatures this raster does not have (counts without
            ``counts_to_celsius``) or 8-bit data it is not.
    """
    from unip_hub.data.radiometric import read_radiometric

    values, valid = read_decimated(ds, info, max_side)  # (h', w') a decimated view of the whole band
    if values.dtype.kind == "f":
        data = values[valid].astype(np.float32)[None]  # (1, n) the data pixels
        kind = read_radiometric(data if data.size else np.zeros((1, 1), np.float32), calibration).kind
        calibration = replace(calibration, unit=kind)
    elif values.dtype == np.uint8 or (values.dtype.kind in "iu" and 0 <= int(values[valid].min(initial=0))
                                      and int(values[valid].max(initial=0)) < 256):
        kind = "8-bit"  # 8-bit data in a wider container, decided once for the raster (not per tile)
    else:
        kind = "counts"
    reading = RasterReading(kind, calibration, None,
                            kind in ("celsius", "kelvin") or (kind == "counts" and calibration.counts_to_celsius
                                                              is not None))
    sample = tile_frame(values[valid][None], np.ones((1, int(valid.sum())), bool), reading, info.source)
    if sample.values.size == 0:
        return reading
    bounds = scaling.bounds(sample) if scaling.kind == "percentile" else None
    if scaling.kind != "percentile":
        scaling.to_gray(Frame(sample.values[:, :1], None if sample.celsius is None else sample.celsius[:, :1],
                              info.source, sample.kind))  # raises now (not mid-raster) if the scaling cannot apply
    return replace(reading, bounds=bounds)
