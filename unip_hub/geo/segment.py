"""Segmenting a georeferenced raster (a drone orthomosaic) end to end: streaming tiled inference, a COG class mask
with the source's CRS and transform, polygons per class and a hotspot layer with areas and temperatures, a preview.

>>> from unip_hub.geo import GeoSettings, segment_raster
>>> result = segment_raster(seg, "ortho.tif", "out/", GeoSettings(hot_above=60.0, min_area_m2=0.5))
>>> result.paths["mask"], len(result.polygons)

Files, all written under temporary names and renamed together at the end (:class:`~unip_hub.geo.staging.Staging`):
``<name>_mask.tif`` (Cloud-Optimized GeoTIFF of class indices, nodata kept nodata), ``<name>_polygons.gpkg``
(layers ``classes`` and, with ``hot_above``, ``hotspots``; source CRS), ``<name>_classes.geojson`` and
``<name>_hotspots.geojson`` (WGS84, RFC 7946; not written without a CRS), ``<name>_preview.png``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.geo.raster import Box, RasterInfo, inspect_raster, open_raster, read_window, require_geo
from unip_hub.geo.tiled import TileRun, Tiling

__all__ = ["GeoSettings", "RasterResult", "output_paths", "segment_raster", "segment_raster_files"]

OUTPUTS = {"mask": "_mask.tif", "gpkg": "_polygons.gpkg", "classes_geojson": "_classes.geojson",
           "hotspots_geojson": "_hotspots.geojson", "preview": "_preview.png"}


@dataclass
class GeoSettings:
    """How a raster is read, tiled and vectorised.

    Attributes:
        band: 1-based band with the thermal data (required for multi-band rasters).
        nodata: Nodata value overriding the file's.
        tile_size: Model window side in pixels.
        overlap: Pixels shared by neighbouring windows.
        batch_tiles: Windows per model call.
        simplify: Polygon simplification tolerance in pixels (0: exact pixel outlines).
        hot_above: Hotspots are regions hotter than this (degC); class polygons whose max exceeds it are flagged.
        min_area_m2: Smallest hotspot (and smallest flagged class polygon), in m^2 (pixels without a CRS).
        classes: Classes to vectorise; default every class but 0 (background / unlabelled).
        preview: Write the preview PNG.
        preview_side: Longest side of the preview.
        geojson: Write GeoJSON copies (WGS84) of the layers.
        prefetch: Read tiles in a thread while the model runs; ``None``: when the model runs on a GPU. On the CPU
            the model's threads hold every core, and a reader thread only competes with them and, through its own
            allocator arena, grows the peak memory with the raster (measured on 2 cores at 4096^2: 63.8 s and
            1705 MB with the thread, 60.0 s and 1593 MB without).
        cache_mb: GDAL block cache in MB (bounds the memory of reads and writes).
        vector_chunk: Side of the mask windows vectorised at a time.
    """

    band: int | None = None
    nodata: float | None = None
    tile_size: int = 512
    overlap: int = 128
    batch_tiles: int = 4
    simplify: float = 0.0
    hot_above: float | None = None
    min_area_m2: float = 0.0
    classes: Sequence[int] | None = None
    preview: bool = True
    preview_side: int = 1024
    geojson: bool = True
    prefetch: bool | None = None
    cache_mb: int = 32
    vector_chunk: int = 2048

    def __post_init__(self) -> None:
        Tiling(self.tile_size, self.overlap, self.batch_tiles)  # checks them
        if self.simplify < 0 or self.min_area_m2 < 0:
            raise ValueError(f"simplify ({self.simplify}) and min_area_m2 ({self.min_area_m2}) must be >= 0")

    @property
    def tiling(self) -> Tiling:
        return Tiling(self.tile_size, self.overlap, self.batch_tiles)


@dataclass
class RasterResult:
    """What :func:`segment_raster` wrote and found.

    Attributes:
        paths: Output kind -> file (see :data:`OUTPUTS`).
        polygons: One row per polygon: ``layer`` (``classes`` / ``hotspots``), ``class``, ``class_name``,
            ``area_m2``, ``area_px``, ``t_min``, ``t_mean``, ``t_max``, ``t_p95`` (degC, NaN without temperatures),
            ``hot`` and ``geometry`` (shapely, source CRS; pixel coordinates without a CRS).
        run: Tiles run and skipped (all nodata), model vs. total seconds of the tiled pass.
        info: The source raster's description.
        warnings: What was warned about on the way (e.g. no CRS), also issued as ``UserWarning`` s.
    """

    paths: dict[str, str]
    polygons: list[dict[str, Any]]
    run: TileRun
    info: RasterInfo
    warnings: list[str] = field(default_factory=list)


def output_paths(out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Every file a raster named ``stem`` can get under ``out_dir``."""
    return {kind: Path(out_dir) / f"{stem}{suffix}" for kind, suffix in OUTPUTS.items()}


def _predictor(model_or_predictor: Any) -> Any:
    from unip_hub.engine.predictor import BasePredictor
    from unip_hub.inference.predictor import Predictor

    return model_or_predictor if isinstance(model_or_predictor, BasePredictor) else Predictor(model_or_predictor)


def segment_raster(model_or_predictor: Any, source: str | os.PathLike | Any, out_dir: str | os.PathLike,
                   settings: GeoSettings | None = None, name: str | None = None) -> RasterResult:
    """Segments a georeferenced raster without loading it whole (see the module docstring).

    Args:
        model_or_predictor: A segmenter, or a :class:`~unip_hub.inference.Predictor` (its scaling, calibration
            (``counts_to_celsius``) and runtime are used).
        source: A GeoTIFF path or an open rasterio dataset.
        out_dir: Output folder.
        settings: Band, nodata, tiling, vectorising, hotspots.
        name: Output file stem (default: the raster's file stem).

    Raises:
        GeoError: Unreadable, rotated/sheared, wrong band (one line naming the file); nothing is left written.
    """
    import warnings

    import rasterio

    from unip_hub.geo.staging import Staging

    require_geo()
    settings = settings or GeoSettings()
    predictor = _predictor(model_or_predictor)
    with warnings.catch_warnings(record=True) as caught, rasterio.Env(GDAL_CACHEMAX=settings.cache_mb), \
            open_raster(source) as ds:
        warnings.simplefilter("always")
        info = inspect_raster(ds, settings.band, settings.nodata)
        stem = name or Path(str(info.source)).stem
        finals = output_paths(out_dir, stem)
        with Staging(out_dir, stem, finals.values()) as stage:
            run, polygons = _run(ds, info, predictor, settings, stage, finals)
        paths = {kind: str(path) for kind, path in finals.items() if path.exists() and path in stage.staged}
    notes = [str(w.message) for w in caught if "NotGeoreferenced" not in type(w.message).__name__]
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return RasterResult(paths, polygons, run, info, notes)


def _run(ds: Any, info: RasterInfo, predictor: Any, settings: GeoSettings, stage: Any, finals: dict[str, Path]
         ) -> tuple[TileRun, list[dict[str, Any]]]:
    import rasterio

    from unip_hub.geo.layers import write_layers
    from unip_hub.geo.preview import render_preview
    from unip_hub.geo.scaling import raster_reading
    from unip_hub.geo.tiled import MaskWriter, finish_cog, mask_dtype, segment_tiles
    from unip_hub.geo.vectors import FIELDS
    from unip_hub.inference.images import write_png_atomic
    from unip_hub.inference.render import palette_array
    from unip_hub.models.slide import InferenceOptions

    model = predictor.model
    reading = raster_reading(ds, info, predictor.scaling, predictor.calibration)
    dtype, nodata = mask_dtype(model.num_classes)
    raw = stage.scratch_path(".tif")
    writer = MaskWriter(raw, info, dtype, nodata)
    whole = InferenceOptions(mode="whole")
    try:
        run = segment_tiles(ds, info, reading, predictor, lambda x: predictor.logits_torch(x, whole),
                            model.num_classes, settings.tiling, writer, nodata, _prefetch(settings, model))
    finally:
        writer.close()
    finish_cog(raw, stage.path(finals["mask"]))
    raw.unlink()
    with rasterio.open(stage.staged[finals["mask"]]) as mask_ds:
        rows, hot_pixels = _polygons(ds, mask_ds, info, reading, model, settings)
        layers = {"classes": [r for r in rows if r["layer"] == "classes"]}
        if settings.hot_above is not None:
            layers["hotspots"] = [r for r in rows if r["layer"] == "hotspots"]
        geojson = {}
        if settings.geojson and info.crs is not None:
            geojson = {layer: stage.path(finals[f"{layer}_geojson"]) for layer in layers}
        write_layers(layers, info, stage.path(finals["gpkg"]), geojson, FIELDS)
        if settings.preview:
            colours = palette_array(model.num_classes, model.palette)
            picture = render_preview(ds, info, reading, predictor, mask_ds, colours, model.class_names, hot_pixels,
                                     settings.preview_side)
            write_png_atomic(picture, stage.path(finals["preview"]))
    return run, rows


def _prefetch(settings: GeoSettings, model: Any) -> bool:
    """Whether tiles are read in a thread: as set, else only when the model runs on a GPU."""
    if settings.prefetch is not None:
        return settings.prefetch
    return any(p.device.type == "cuda" for p in model.parameters())


def _polygon_rows(layer: str, regions: list[tuple[int, Any, Any]], info: RasterInfo, settings: GeoSettings,
                  names: list[str]) -> list[dict[str, Any]]:
    """One table row per vectorised region of ``layer``: class, areas, temperatures, hot flag, map geometry and
    (``pixels``) the polygon in pixel coordinates."""
    from unip_hub.geo.vectors import area_m2, to_map

    rows = []
    for value, polygon, zone in regions:
        stat = zone.result()
        majority = stat.pop("majority_class")
        value = value if majority is None else majority
        geometry = to_map(polygon, info)
        area = area_m2(geometry, info)  # NaN without a CRS: min_area_m2 then counts pixels
        big = (area if info.crs is not None else float(polygon.area)) >= settings.min_area_m2
        if settings.simplify > 0:
            geometry = to_map(polygon.simplify(settings.simplify, preserve_topology=True), info)
        hot = settings.hot_above is not None and stat["t_max"] > settings.hot_above and big
        rows.append({"layer": layer, "class": value, "class_name": names[value] if value < len(names) else
                     f"class_{value}", "area_m2": area, "area_px": round(polygon.area), **stat, "hot": bool(hot),
                     "geometry": geometry, "pixels": polygon})
    return rows


def _polygons(ds: Any, mask_ds: Any, info: RasterInfo, reading: Any, model: Any, settings: GeoSettings
              ) -> tuple[list[dict[str, Any]], list[Any]]:
    """The rows of the class layer and of the hotspot layer, and the hotspots in pixel coordinates."""
    from rasterio.windows import Window

    from unip_hub.geo.scaling import tile_frame
    from unip_hub.geo.vectors import Chunk, vectorize

    nodata = int(mask_ds.nodata)
    wanted = np.array(sorted(settings.classes if settings.classes is not None
                             else range(1 if model.num_classes > 1 else 0, model.num_classes)))
    names = list(model.class_names or [])

    def mask_of(box: Box) -> np.ndarray:
        y1, y2, x1, x2 = box
        return mask_ds.read(1, window=Window(x1, y1, x2 - x1, y2 - y1))  # (h, w)

    def celsius_of(box: Box) -> tuple[np.ndarray | None, np.ndarray]:
        values, valid = read_window(ds, info, box)
        return tile_frame(values, valid, reading, info.source).celsius, valid

    def class_chunk(box: Box) -> Chunk:
        labels = mask_of(box)
        return Chunk(labels, (labels != nodata) & np.isin(labels, wanted), *celsius_of(box))

    def hot_chunk(box: Box) -> Chunk:
        celsius, valid = celsius_of(box)
        hot = valid & (np.nan_to_num(celsius, nan=-np.inf) > settings.hot_above)
        return Chunk(hot.astype(np.uint8), hot, celsius, valid, mask_of(box))

    size = (info.height, info.width, settings.vector_chunk)
    rows = _polygon_rows("classes", vectorize(class_chunk, *size), info, settings, names)
    if settings.hot_above is not None and reading.has_temperatures:
        hot = _polygon_rows("hotspots", vectorize(hot_chunk, *size, model.num_classes), info, settings, names)
        rows += [r for r in hot if r["hot"]]
    hot_pixels = [r["pixels"] for r in rows if r["layer"] == "hotspots"]
    for r in rows:
        del r["pixels"]
    return rows, hot_pixels


def segment_raster_files(model_or_predictor: Any, rasters: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                         settings: GeoSettings | None = None) -> list[dict[str, Any]]:
    """:func:`segment_raster` on each file, one ``unip segment`` record each: ``input``, ``size``, the written
    paths, ``tiles``, ``skipped_tiles``, ``polygons``, ``hotspots``; or ``input`` and the one-line ``error`` (and
    then no file of it)."""
    from unip_hub.geo.raster import GeoError

    predictor = _predictor(model_or_predictor)
    records = []
    for path in rasters:
        try:
            r = segment_raster(predictor, path, out_dir, settings)
        except (GeoError, ValueError, OSError) as error:
            records.append({"input": str(path), "error": str(error)})
            continue
        records.append({"input": str(path), "size": [r.info.height, r.info.width], **r.paths, "tiles": r.run.tiles,
                        "skipped_tiles": r.run.skipped, "polygons": sum(p["layer"] == "classes" for p in r.polygons),
                        "hotspots": sum(p["layer"] == "hotspots" for p in r.polygons)})
    return records
