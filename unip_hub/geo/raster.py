"""Opening and checking georeferenced rasters (GeoTIFF orthomosaics) through rasterio, and reading them by window.

A raster is checked once (:func:`inspect_raster`) and described by a :class:`RasterInfo`: size, the band that holds
the thermal data, nodata, CRS and its units, the affine transform. Refused with a one-line :class:`GeoError` naming
the file and the fix: files GDAL cannot read (corrupt, truncated), a band outside the file's bands, several bands
and no ``band`` chosen, rotated or sheared transforms. A raster without a CRS is read in pixel coordinates (with a
warning). Windows are ``(y1, y2, x1, x2)`` boxes, as :func:`unip_hub.models.slide.window_boxes` makes them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GEOTIFF_SUFFIXES", "GeoError", "RasterInfo", "inspect_raster", "is_georeferenced", "open_raster",
           "read_decimated", "read_window", "require_geo"]

GEOTIFF_SUFFIXES = (".tif", ".tiff", ".gtif", ".vrt")
Box = tuple[int, int, int, int]


class GeoError(ValueError):
    """A raster that cannot be segmented as it is (the message names the file and the fix)."""


def require_geo() -> None:
    """Raises ``ImportError`` with the install line when the ``geo`` extra is missing."""
    try:
        import pyogrio  # noqa: F401
        import rasterio  # noqa: F401
        import shapely  # noqa: F401
    except ImportError as error:
        raise ImportError(f"georeferenced rasters need the geo extra: pip install 'unip[geo]' ({error})") from error


def is_georeferenced(path: str | os.PathLike) -> bool:
    """True when ``path`` is a raster GDAL reads with a CRS or a non-identity geotransform (``unip segment`` sends
    those here); False for other files, unreadable ones and when rasterio is not installed."""
    if Path(path).suffix.lower() not in GEOTIFF_SUFFIXES or not Path(path).is_file():
        return False
    try:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioError
    except ImportError:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return ds.crs is not None or not ds.transform.is_identity
    except (RasterioError, OSError):
        return False


@dataclass(frozen=True)
class RasterInfo:
    """What a raster is, checked once.

    Attributes:
        source: The file name (or the dataset's name) used in messages.
        height: Rows.
        width: Columns.
        band: The 1-based band read.
        dtype: numpy dtype name of that band.
        nodata: The nodata value (the file's or the caller's), or ``None``.
        crs: The rasterio CRS, or ``None`` (then everything is in pixel coordinates).
        transform: Pixel -> map affine transform (the identity without a CRS).
        file_transform: The file's own transform (written to the mask as it is).
        geographic: The CRS is in degrees (areas are geodesic).
        metres_per_unit: Length of one CRS unit in metres (projected CRSs), else ``None``.
    """

    source: str
    height: int
    width: int
    band: int
    dtype: str
    nodata: float | None
    crs: Any
    transform: Any
    file_transform: Any
    geographic: bool
    metres_per_unit: float | None

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in CRS units squared (1 without a CRS)."""
        return abs(self.transform.a * self.transform.e)


@contextmanager
def open_raster(source: Any) -> Iterator[Any]:
    """Yields an open rasterio dataset: ``source`` itself when it is one (left open), else the file opened
    (closed after). Unreadable files (corrupt, truncated, not a raster) raise :class:`GeoError`."""
    require_geo()
    import rasterio
    from rasterio.errors import RasterioError

    if hasattr(source, "read") and hasattr(source, "transform"):
        yield source
        return
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such raster")
    try:
        ds = rasterio.open(path)
    except (RasterioError, OSError) as error:
        raise GeoError(f"{path}: not a readable raster ({_first_line(error)}); re-export the GeoTIFF") from error
    try:
        yield ds
    finally:
        ds.close()


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _choose_band(ds: Any, name: str, band: int | None) -> int:
    if band is None:
        if ds.count == 1:
            return 1
        described = [f"{i}: {d}" for i, d in enumerate(ds.descriptions, 1) if d]
        raise GeoError(f"{name}: {ds.count} bands ({', '.join(described) or 'no descriptions'}); choose the thermal "
                       "band with --band N (settings band=N)")
    if not 1 <= band <= ds.count:
        raise GeoError(f"{name}: band {band} asked for, but the raster has {ds.count} band(s); pass --band 1.."
                       f"{ds.count}")
    return band


def inspect_raster(ds: Any, band: int | None = None, nodata: float | None = None) -> RasterInfo:
    """Checks an open dataset and describes it (see the module docstring).

    Args:
        ds: An open rasterio dataset.
        band: 1-based band holding the thermal data; required when the raster has several.
        nodata: Nodata value overriding the file's.

    Raises:
        GeoError: See the module docstring.
    """
    from affine import Affine

    name = str(ds.name)
    band = _choose_band(ds, name, band)
    if len(set(ds.dtypes)) > 1 and ds.count > 1:  # GDAL formats with bands of several types (e.g. VRT)
        warnings.warn(f"{name}: bands of several types {sorted(set(ds.dtypes))}; band {band} is read", stacklevel=2)
    t = ds.transform
    if t.b != 0 or t.d != 0:
        raise GeoError(f"{name}: rotated or sheared geotransform {tuple(t)[:6]}; warp it north-up first "
                       f"(gdalwarp {Path(name).name} north_up.tif)")
    if ds.width < 1 or ds.height < 1:
        raise GeoError(f"{name}: empty raster ({ds.width} x {ds.height})")
    crs = ds.crs
    if crs is None:
        warnings.warn(f"{name}: no CRS; polygons are written in pixel coordinates (column, row) and no GeoJSON "
                      "(assign one with gdal_edit.py -a_srs EPSG:XXXX)", stacklevel=2)
    value = ds.nodatavals[band - 1] if nodata is None else float(nodata)
    geographic = bool(crs is not None and crs.is_geographic)
    metres = None
    if crs is not None and crs.is_projected:
        metres = float(crs.linear_units_factor[1])
    return RasterInfo(name, ds.height, ds.width, band, str(ds.dtypes[band - 1]),
                      None if value is None else float(value), crs, t if crs is not None else Affine.identity(), t,
                      geographic, metres)


def valid_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Boolean (H, W): pixels that are data (not ``nodata``, not NaN)."""
    valid = np.ones(values.shape, bool) if values.dtype.kind != "f" else np.isfinite(values)
    if nodata is not None and not np.isnan(nodata):
        valid &= values != np.asarray(nodata).astype(values.dtype)
    return valid


def read_window(ds: Any, info: RasterInfo, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """(values (h, w) as stored, valid (h, w) bool) of the window ``box`` = (y1, y2, x1, x2) of the thermal band."""
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    y1, y2, x1, x2 = box
    try:
        values = ds.read(info.band, window=Window(x1, y1, x2 - x1, y2 - y1))  # (h, w)
    except (RasterioError, OSError) as error:
        raise GeoError(f"{info.source}: cannot read rows {y1}..{y2}, columns {x1}..{x2} ({_first_line(error)}); "
                       "the file is truncated or corrupt: re-export it") from error
    return values, valid_mask(values, info.nodata)


def read_decimated(ds: Any, info: RasterInfo, max_side: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) of the whole band read at most ``max_side`` pixels a side (GDAL takes an overview when the
    file has one; nearest-neighbour, so values are real pixel values, never blends with nodata)."""
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    step = max(1, -(-max(info.height, info.width) // max_side))  # ceil
    shape = (max(1, info.height // step), max(1, info.width // step))
    try:
        if step == 1 or ds.overviews(info.band):  # GDAL reads the overview
            values = ds.read(info.band, out_shape=shape, resampling=Resampling.nearest)  # (h', w')
        else:  # GDAL's own decimation without overviews is very slow: every step-th pixel of row bands
            rows = max(step, (1 << 22) // max(info.width, 1) // step * step)
            values = np.concatenate([
                ds.read(info.band, window=Window(0, y, info.width, min(rows, info.height - y)))[::step, ::step]
                for y in range(0, shape[0] * step, rows)])[: shape[0], : shape[1]]  # (h', w')
    except (RasterioError, OSError) as error:
        raise GeoError(f"{info.source}: cannot read the raster ({_first_line(error)}); the file is truncated or "
                       "corrupt: re-export it") from error
    return values, valid_mask(values, info.nodata)
