"""Polygons from a raster mask, whole across window seams, with areas and temperatures, written as GeoPackage
(source CRS) and GeoJSON (WGS84, RFC 7946).

A mask larger than memory is vectorised window by window (``rasterio.features.shapes``, 4-connected, in pixel
coordinates where every vertex is an integer and unions are exact); the pieces that touch an inner window border
are unioned per value, so an object crossing a seam comes back as one polygon. Temperatures are gathered in the
same pass: each window's regions are labelled (``scipy.ndimage.label``, the same 4-connected regions), matched to
their polygons by a pixel centre, and their temperatures grouped into :class:`~unip_hub.geo.zonal.Zone` s, merged
across seams with the polygons. Areas are in m^2: planar for a projected CRS, geodesic (``pyproj.Geod``) for a CRS in
degrees, none without a CRS. The layers are written by :mod:`unip_hub.geo.layers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from unip_hub.geo.raster import Box, RasterInfo
from unip_hub.geo.zonal import Zone, zones_of

__all__ = ["FIELDS", "Chunk", "area_m2", "to_map", "vectorize"]

ChunkFn = Callable[[Box], "Chunk"]
FIELDS = {"class": int, "class_name": str, "area_m2": float, "area_px": int, "t_min": float, "t_mean": float,
          "t_max": float, "t_p95": float, "hot": bool}
"""The attributes of the class and hotspot layers (rows also carry ``layer`` and ``geometry``)."""


@dataclass
class Chunk:
    """One window of what is vectorised.

    Attributes:
        labels: (h, w) values (uint8/uint16/int32) whose regions become polygons.
        keep: (h, w) pixels that count.
        celsius: (h, w) degC under them, or None (no temperatures).
        valid: (h, w) data pixels of ``celsius`` (``keep`` when None).
        classes: (h, w) class mask to count under each region, or None.
    """

    labels: np.ndarray
    keep: np.ndarray
    celsius: np.ndarray | None = None
    valid: np.ndarray | None = None
    classes: np.ndarray | None = None


def _components(labels: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """int32 (h, w) ids 1..n of the 4-connected regions of equal kept values (0 elsewhere), and n."""
    from scipy import ndimage

    components = np.zeros(labels.shape, np.int32)
    n = 0
    for value in np.unique(labels[keep]):
        region = keep & (labels == value)
        ids, found = ndimage.label(region)  # default structure: 4-connected
        components[region] = ids[region] + n
        n += found
    return components, n


def _chunk_regions(c: Chunk, box: Box, num_classes: int) -> list[tuple[int, Any, Zone]]:
    """(value, polygon, zone) of every region of one window, polygons in pixel coordinates of the raster."""
    import shapely
    from affine import Affine
    from rasterio.features import shapes
    from shapely.geometry import shape

    y1, _, x1, _ = box
    pieces = [(int(v), shape(g)) for g, v in shapes(c.labels, mask=c.keep, connectivity=4,
                                                    transform=Affine.translation(x1, y1))]
    components, n = _components(c.labels, c.keep)
    zones = zones_of(components, n, c.celsius, c.keep if c.valid is None else c.valid, c.classes, num_classes)
    ids, first = np.unique(components.ravel(), return_index=True)
    first = first[ids > 0]
    rows, cols = np.divmod(first, components.shape[1])
    centres = shapely.points(cols + 0.5 + x1, rows + 0.5 + y1)  # one pixel centre inside each component
    found, owner = shapely.STRtree([poly for _, poly in pieces]).query(centres, predicate="within")
    of_piece: list[Zone] = [Zone() for _ in pieces]
    for component, piece in zip(found, owner):
        of_piece[piece] = zones[component]  # components are numbered 1..n in np.unique's order
    return [(value, poly, zone) for (value, poly), zone in zip(pieces, of_piece)]


def _merge_seams(value: int, items: list[tuple[Any, Zone]]) -> list[tuple[int, Any, Zone]]:
    """The pieces of one value that touch window borders, unioned into whole polygons with merged zones."""
    import shapely

    merged = shapely.unary_union([poly for poly, _ in items])
    parts = list(getattr(merged, "geoms", [merged]))
    zones = [Zone() for _ in parts]
    inside = shapely.point_on_surface([poly for poly, _ in items])
    found, owner = shapely.STRtree(parts).query(inside, predicate="within")
    for piece, part in zip(found, owner):
        zones[part].merge(items[piece][1])
    return [(value, part, zone) for part, zone in zip(parts, zones)]


def vectorize(read_chunk: ChunkFn, height: int, width: int, chunk: int = 2048, num_classes: int = 0
              ) -> list[tuple[int, Any, Zone]]:
    """(value, shapely Polygon in pixel coordinates, :class:`~unip_hub.geo.zonal.Zone` of its temperatures and
    classes) of every 4-connected region of kept pixels, whole across window seams.

    Args:
        read_chunk: ``(y1, y2, x1, x2) -> Chunk``.
        height: Rows of the raster.
        width: Columns of the raster.
        chunk: Side of the windows read at a time.
        num_classes: K of ``Chunk.classes`` (0: none counted).
    """
    done: list[tuple[int, Any, Zone]] = []
    seams: dict[int, list[tuple[Any, Zone]]] = {}
    for y1 in range(0, height, chunk):
        for x1 in range(0, width, chunk):
            box = (y1, min(y1 + chunk, height), x1, min(x1 + chunk, width))
            c = read_chunk(box)
            if not c.keep.any():
                continue
            for value, poly, zone in _chunk_regions(c, box, num_classes):
                left, top, right, bottom = poly.bounds
                if (left == x1 > 0) or (top == y1 > 0) or (right == box[3] < width) or (bottom == box[1] < height):
                    seams.setdefault(value, []).append((poly, zone))  # may continue in the next window
                else:
                    done.append((value, poly, zone))
    for value, items in seams.items():
        done += _merge_seams(value, items)
    return done


def to_map(polygon: Any, info: RasterInfo) -> Any:
    """A pixel-coordinate polygon in the raster's map coordinates (pixel coordinates without a CRS)."""
    from shapely import affinity

    t = info.transform
    return affinity.affine_transform(polygon, [t.a, t.b, t.d, t.e, t.c, t.f])


@lru_cache(maxsize=8)
def _geod(wkt: str) -> Any:
    from pyproj import CRS

    return CRS.from_wkt(wkt).get_geod()


def area_m2(map_polygon: Any, info: RasterInfo) -> float:
    """Area in m^2: planar in a projected CRS, geodesic on the CRS's ellipsoid in degrees; NaN without a CRS."""
    if info.crs is None:
        return float("nan")
    if info.geographic:
        return abs(float(_geod(info.crs.to_wkt()).geometry_area_perimeter(map_polygon)[0]))
    return float(map_polygon.area) * (info.metres_per_unit or 1.0) ** 2
