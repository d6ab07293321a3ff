"""Vector layers of a raster's results written as GeoPackage (source CRS) and GeoJSON (WGS84 lon/lat, RFC 7946),
through pyogrio: the class polygons and hotspots of :mod:`unip_hub.geo.segment` and the detections of
:mod:`unip_hub.geo.detect`.

A layer is a list of rows (dicts) with a shapely ``geometry`` in map coordinates and the same attribute keys; the
column types are given with the keys (bool, int, str, float; ``None`` in a float column is written as NaN). A layer of
Polygons is written as ``Polygon``; one that also holds MultiPolygons (a Mask R-CNN instance in several pieces)
as ``MultiPolygon``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.geo.raster import RasterInfo

__all__ = ["write_layers"]


def _wgs84(geometries: Sequence[Any], info: RasterInfo) -> list[Any]:
    import shapely
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(info.crs.to_wkt(), "EPSG:4326", always_xy=True)

    def move(xy: np.ndarray) -> np.ndarray:  # (n, 2) map -> (n, 2) lon, lat
        return np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1]))

    return list(shapely.transform(np.asarray(geometries, dtype=object), move))  # one PROJ call for all points


def _column(values: list[Any], kind: type) -> np.ndarray:
    """One attribute column of type ``kind`` (``None`` is NaN in a float column)."""
    if kind is float:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array(values, dtype={bool: bool, int: np.int64, str: object}[kind])


def _geometries(geometries: Sequence[Any]) -> tuple[list[Any], str]:
    """The geometries and their layer type; Polygons become MultiPolygons when the layer holds both."""
    import shapely

    kinds = {g.geom_type for g in geometries}
    if kinds <= {"Polygon"}:
        return list(geometries), "Polygon"
    return [shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in geometries], "MultiPolygon"


def write_layers(layers: dict[str, list[dict[str, Any]]], info: RasterInfo, gpkg: Path | None,
                 geojson: dict[str, Path], fields: dict[str, type]) -> None:
    """Writes each layer (name -> rows with a map ``geometry``) to the GeoPackage ``gpkg`` in the source CRS and to
    its GeoJSON file in ``geojson`` (WGS84 lon/lat, RFC 7946).

    Args:
        layers: Layer name -> rows.
        info: The source raster (its CRS; pixel coordinates and no CRS when it has none).
        gpkg: The GeoPackage to write (every layer in it), or None.
        geojson: Layer name -> GeoJSON file, for the layers that get one.
        fields: The attributes written, in this order (every row has them), and their types (bool, int, str,
            float).
    """
    import shapely
    from pyogrio.raw import write

    crs = info.crs.to_wkt() if info.crs is not None else None
    for name, rows in layers.items():
        data = [_column([r[f] for r in rows], kind) for f, kind in fields.items()]
        geometries, kind = _geometries([r["geometry"] for r in rows])
        if gpkg is not None:
            with warnings.catch_warnings():  # no CRS: said once already, by inspect_raster
                warnings.filterwarnings("ignore", message=".*'crs' was not provided")
                write(str(gpkg), np.array(shapely.to_wkb(geometries), dtype=object), data, list(fields), layer=name,
                      driver="GPKG", geometry_type=kind, crs=crs, append=gpkg.exists())
        if name in geojson:
            lonlat = np.array(shapely.to_wkb(_wgs84(geometries, info)), dtype=object)
            write(str(geojson[name]), lonlat, data, list(fields), layer=name, driver="GeoJSON", geometry_type=kind,
                  crs="EPSG:4326", layer_options={"RFC7946": "YES"})
