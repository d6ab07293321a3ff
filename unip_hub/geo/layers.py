"""Vector layers of a raster's results written as GeoPackage (source CRS) and GeoJSON (WGS84 lon/lat, RFC 7946),
through pyogrio: the class polygons and hotspots of :mod:`unip_hub.geo.segment` and the detections of
:mod:`unip_hub.geo.detect`.

The GeoJSON files are put together here from GEOS's GeoJSON writer (``shapely.to_geojson``, after
``shapely.orient_polygons``: exterior rings counterclockwise, as RFC 7946 asks) and the attributes as JSON (NaN as
``null``): GDAL's GeoJSON driver takes microseconds per coordinate (measured: 1.0-1.7 s for the 4138 class polygons,
357k vertices, of the 4096^2 benchmark raster, against 0.13 s for shapely's). A layer with a polygon across the
antimeridian, which RFC 7946 asks to be cut there, is left to GDAL, which cuts it.

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
            lonlat = _wgs84(geometries, info)
            if _write_feature_collection(geojson[name], name, lonlat, data, list(fields)):
                continue
            write(str(geojson[name]), np.array(shapely.to_wkb(lonlat), dtype=object), data, list(fields), layer=name,
                  driver="GeoJSON", geometry_type=kind, crs="EPSG:4326", layer_options={"RFC7946": "YES"})


def _write_feature_collection(path: Path, name: str, lonlat: Sequence[Any], data: list[np.ndarray],
                              fields: list[str], chunk: int = 2000) -> bool:
    """Writes the RFC 7946 FeatureCollection of a layer (WGS84 lon/lat geometries, attribute columns) ``chunk``
    features at a time; False (nothing written) when a geometry crosses the antimeridian (GDAL cuts those)."""
    import json

    import shapely

    from unip_hub.utils.atomic import atomic_path

    geometries = shapely.orient_polygons(np.asarray(lonlat, dtype=object))  # (n,) exteriors counterclockwise
    bounds = shapely.bounds(geometries)  # (n, 4)
    if len(bounds) and np.any(bounds[:, 2] - bounds[:, 0] > 180.0):
        return False
    columns = [[None if isinstance(v, float) and not np.isfinite(v) else v for v in column.tolist()]
               for column in data]
    rows = list(zip(*columns)) if columns else [()] * len(geometries)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(f'{{"type": "FeatureCollection", "name": {json.dumps(name)}, "features": [')
        for start in range(0, len(geometries), chunk):
            texts = shapely.to_geojson(geometries[start:start + chunk]).tolist()
            f.write(",".join(f'\n{{"type": "Feature", "properties": {json.dumps(dict(zip(fields, values)))}, '
                             f'"geometry": {g}}}' for values, g in zip(rows[start:start + chunk], texts))
                    + ("," if start + chunk < len(geometries) else ""))
        f.write("\n]}\n")
    return True
