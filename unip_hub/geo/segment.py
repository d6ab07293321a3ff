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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.geo.raster import RasterInfo
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

    def reads_ahead(self, predictor: Any) -> bool:
        """Whether tiles are read in a thread for ``predictor``: ``prefetch`` as set, else when it runs on a GPU."""
        return self.prefetch if self.prefetch is not None else predictor.device.type == "cuda"


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
    from unip_hub.geo.staging import run_staged

    settings = settings or GeoSettings()
    predictor = _predictor(model_or_predictor)
    done = run_staged(source, out_dir, settings, name, OUTPUTS,
                      lambda ds, info, stage, finals: _run(ds, info, predictor, settings, stage, finals))
    return RasterResult(done.paths, done.rows, done.run, done.info, done.warnings)


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
    # outside the tiled pass, where the model does not hold the cores, GDAL decompresses and compresses blocks in
    # threads (GDAL_NUM_THREADS)
    with _threaded(ds) as whole_reads:
        reading = raster_reading(whole_reads, info, predictor.scaling, predictor.calibration)
        dtype, nodata = mask_dtype(model.num_classes)
        raw = stage.scratch_path(".tif")
        writer = MaskWriter(raw, info, dtype, nodata)
        whole = InferenceOptions(mode="whole")
        try:
            run = segment_tiles(ds, info, reading, predictor, lambda x: predictor.logits_torch(x, whole),
                                model.num_classes, settings.tiling, writer, nodata, settings.reads_ahead(predictor))
        finally:
            writer.close()
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
            rows, hot_pixels = _vectorise(raw, whole_reads, info, reading, model, settings, nodata)
            finish_cog(raw, stage.path(finals["mask"]))
            raw.unlink()
            layers = {"classes": [r for r in rows if r["layer"] == "classes"]}
            if settings.hot_above is not None:
                layers["hotspots"] = [r for r in rows if r["layer"] == "hotspots"]
            geojson = {}
            if settings.geojson and info.crs is not None:
                geojson = {layer: stage.path(finals[f"{layer}_geojson"]) for layer in layers}
            write_layers(layers, info, stage.path(finals["gpkg"]), geojson, FIELDS)
            if settings.preview:
                with rasterio.open(stage.staged[finals["mask"]]) as mask_ds:
                    colours = palette_array(model.num_classes, model.palette)
                    picture = render_preview(whole_reads, info, reading, predictor, mask_ds, colours, model.class_names,
                                             hot_pixels, settings.preview_side)
                write_png_atomic(picture, stage.path(finals["preview"]))
    return run, rows


@contextmanager
def _threaded(ds: Any) -> Iterator[Any]:
    """``ds`` opened again with ``GDAL_NUM_THREADS`` (which only takes effect when a dataset is opened), for the
    whole-raster reads outside the tiled pass; ``ds`` itself when it cannot be opened again."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
            again = rasterio.open(ds.name)
    except (RasterioError, OSError, AttributeError):
        yield ds
        return
    try:
        yield again
    finally:
        again.close()


def _polygon_rows(layer: str, regions: list[tuple[int, Any, dict[str, Any]]], info: RasterInfo,
                  settings: GeoSettings, names: list[str]) -> list[dict[str, Any]]:
    """One table row per vectorised region of ``layer``: class, areas, temperatures, hot flag, map geometry and
    (``pixels``) the polygon in pixel coordinates."""
    import shapely

    from unip_hub.geo.vectors import area_m2, to_map

    if not regions:
        return []
    polygons = np.array([polygon for _, polygon, _ in regions], object)  # (n,) pixel coordinates
    geometries = to_map(polygons, info)  # (n,)
    if info.crs is None:
        areas = np.full(len(regions), np.nan)  # min_area_m2 then counts pixels
    elif info.geographic:
        areas = np.array([area_m2(g, info) for g in geometries])
    else:
        areas = shapely.area(geometries) * (info.metres_per_unit or 1.0) ** 2
    pixels = shapely.area(polygons)  # (n,)
    big = (areas if info.crs is not None else pixels) >= settings.min_area_m2
    if settings.simplify > 0:
        geometries = to_map(shapely.simplify(polygons, settings.simplify, preserve_topology=True), info)
    rows = []
    for (value, polygon, stat), geometry, area, px, large in zip(regions, geometries.tolist(), areas.tolist(),
                                                                  pixels.tolist(), big.tolist()):
        stat = dict(stat)
        majority = stat.pop("majority_class")
        value = value if majority is None else majority
        hot = settings.hot_above is not None and stat["t_max"] > settings.hot_above and large
        rows.append({"layer": layer, "class": value, "class_name": names[value] if value < len(names) else
                     f"class_{value}", "area_m2": area, "area_px": round(px), **stat, "hot": bool(hot),
                     "geometry": geometry, "pixels": polygon})
    return rows


def _vectorise(mask_path: Path, ds: Any, info: RasterInfo, reading: Any, model: Any, settings: GeoSettings,
               nodata: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """The rows of the class layer and of the hotspot layer, and the hotspots in pixel coordinates: the finished
    mask and the raster read once, together, in full-width bands of about ``vector_chunk`` ^ 2 pixels. After the
    tiled pass, not during it: measured at 8192^2, vectorising between the model calls added ~200-270 MB to the
    peak; after the pass its memory never adds to the model's."""
    import rasterio
    from rasterio.windows import Window

    from unip_hub.geo.raster import read_window
    from unip_hub.geo.scaling import tile_frame
    from unip_hub.geo.vectors import Chunk, Vectorizer, band_rows

    names = list(model.class_names or [])
    chosen = sorted(settings.classes if settings.classes is not None
                    else range(1 if model.num_classes > 1 else 0, model.num_classes))
    wanted = np.zeros(max(nodata, *chosen, 0) + 1, bool)  # (V,) class value -> vectorised
    wanted[chosen] = True
    wanted[nodata] = False
    classes = Vectorizer(info.height, info.width)
    hot = None
    if settings.hot_above is not None and reading.has_temperatures:
        hot = Vectorizer(info.height, info.width, model.num_classes)
    band = band_rows(info.width, settings.vector_chunk)
    with rasterio.open(mask_path) as mask_ds:
        for y1 in range(0, info.height, band):
            y2 = min(y1 + band, info.height)
            labels = mask_ds.read(1, window=Window(0, y1, info.width, y2 - y1))  # (h, W)
            values, valid = read_window(ds, info, (y1, y2, 0, info.width))  # (h, W) each
            celsius = tile_frame(values, valid, reading, info.source).celsius if reading.has_temperatures else None
            classes.add(Chunk(labels, wanted[labels], celsius, valid))
            if hot is not None and celsius is not None:
                spots = np.greater(celsius, settings.hot_above, where=valid, out=np.zeros(valid.shape, bool))
                hot.add(Chunk(spots.view(np.uint8), spots, celsius, valid, labels))
    rows = _polygon_rows("classes", classes.close(), info, settings, names)
    if hot is not None:
        rows += [r for r in _polygon_rows("hotspots", hot.close(), info, settings, names) if r["hot"]]
    hot_pixels = [r["pixels"] for r in rows if r["layer"] == "hotspots"]
    for r in rows:
        del r["pixels"]
    return rows, hot_pixels


def segment_raster_files(model_or_predictor: Any, rasters: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                         settings: GeoSettings | None = None) -> list[dict[str, Any]]:
    """:func:`segment_raster` on each file, one ``unip segment`` record each: ``input``, ``size``, the written
    paths, ``tiles``, ``skipped_tiles``, ``polygons``, ``hotspots``; or ``input`` and the one-line ``error`` (and
    then no file of it)."""
    from unip_hub.geo.staging import raster_records

    predictor = _predictor(model_or_predictor)
    return raster_records(lambda path: segment_raster(predictor, path, out_dir, settings), rasters,
                          lambda r: {"polygons": sum(p["layer"] == "classes" for p in r.polygons),
                                     "hotspots": sum(p["layer"] == "hotspots" for p in r.polygons)})
