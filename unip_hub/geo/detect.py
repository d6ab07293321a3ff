"""Detecting objects in a georeferenced raster (a drone orthomosaic) with a trained detector, in the streaming tiles
of segmentation: boxes in map coordinates with areas and the temperatures under them, one per object across the
tile overlaps.

The tiles are :func:`unip_hub.geo.tiled.iter_tile_batches` (windowed reads, the raster-wide input scaling, nodata
black, all-nodata tiles skipped); each batch goes through the detector's prepared door
(:meth:`~unip_hub.detection.predict.DetectionPredictor.predict_torch`), its boxes are moved to raster pixels and
the views of one object in several tiles are merged (:mod:`unip_hub.geo.tile_boxes`). The raster is never held
whole: what is kept is the detections.

>>> from unip_hub.detection import DetectionPredictor, load_detector
>>> from unip_hub.geo import GeoSettings, detect_raster
>>> found = detect_raster(DetectionPredictor(load_detector("det.pth")), "ortho.tif", "out/", GeoSettings(hot_above=60))
>>> found.paths["gpkg"], found.detections[0]["geometry"]

Files, all or none (:class:`~unip_hub.geo.staging.Staging`): ``<name>_detections.gpkg`` (layer ``detections``,
source CRS), ``<name>_detections.geojson`` (WGS84, RFC 7946; not written without a CRS), ``<name>_detections.csv``
(:data:`DETECTION_FIELDS` and the box centre in map coordinates) and ``<name>_detections.png`` (the preview).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.geo.raster import RasterInfo, read_window
from unip_hub.geo.segment import GeoSettings
from unip_hub.geo.tile_boxes import Merged, TileBoxes, box_margins, merge_tiles
from unip_hub.geo.tiled import TileRun

__all__ = ["DETECTION_FIELDS", "DETECT_OUTPUTS", "RasterDetections", "detect_raster", "detect_raster_files",
           "detect_tiles"]

DETECT_OUTPUTS = {"gpkg": "_detections.gpkg", "geojson": "_detections.geojson", "csv": "_detections.csv",
                  "preview": "_detections.png"}
DETECTION_FIELDS = {"id": int, "class": int, "class_name": str, "score": float, "x0": float, "y0": float,
                    "x1": float, "y1": float, "area_m2": float, "t_min": float, "t_mean": float, "t_max": float,
                    "t_p95": float, "hot": bool, "views": int}
"""The attributes of the detection layer: box in raster pixels (x0, y0, x1, y1), area of the box (or of the Mask
R-CNN outline) in m^2, temperatures inside it (degC), hot flag, and how many tile views were merged."""
_CSV_EXTRA = ("centre_x", "centre_y")


@dataclass
class RasterDetections:
    """What :func:`detect_raster` wrote and found.

    Attributes:
        paths: Output kind -> file (see :data:`DETECT_OUTPUTS`).
        detections: One row per object (:data:`DETECTION_FIELDS`, ``centre_x`` / ``centre_y`` and ``geometry``:
            the box, or the Mask R-CNN outline, as a shapely polygon in the source CRS; pixel coordinates without
            a CRS).
        run: Tiles run and skipped (all nodata), model vs. total seconds of the tiled pass.
        info: The source raster's description.
        warnings: What was warned about on the way (e.g. no CRS), also issued as ``UserWarning`` s.
    """

    paths: dict[str, str]
    detections: list[dict[str, Any]]
    run: TileRun
    info: RasterInfo
    warnings: list[str] = field(default_factory=list)


def _predictor(model_or_predictor: Any) -> Any:
    from unip_hub.detection.predict import DetectionPredictor

    return model_or_predictor if isinstance(model_or_predictor, DetectionPredictor) else \
        DetectionPredictor(model_or_predictor)


def detect_raster(model_or_predictor: Any, source: str | os.PathLike | Any, out_dir: str | os.PathLike,
                  settings: GeoSettings | None = None, name: str | None = None) -> RasterDetections:
    """Detects objects in a georeferenced raster without loading it whole (see the module docstring).

    Args:
        model_or_predictor: A detector, or a :class:`~unip_hub.detection.predict.DetectionPredictor` (its scaling,
            calibration, thresholds and runtime are used; its NMS IoU also merges the views across tiles).
        source: A GeoTIFF path or an open rasterio dataset.
        out_dir: Output folder.
        settings: Band, nodata, tiling, ``hot_above`` / ``min_area_m2`` (the hot flag), preview. Vectorising
            options (``simplify``, ``classes``, ``vector_chunk``) are segmentation's and not used.
        name: Output file stem (default: the raster's file stem).

    Raises:
        GeoError: Unreadable, rotated/sheared, wrong band (one line naming the file); nothing is left written.
    """
    from unip_hub.geo.staging import run_staged

    settings = settings or GeoSettings()
    predictor = _predictor(model_or_predictor)
    done = run_staged(source, out_dir, settings, name, DETECT_OUTPUTS,
                      lambda ds, info, stage, finals: _run(ds, info, predictor, settings, stage, finals))
    return RasterDetections(done.paths, done.rows, done.run, done.info, done.warnings)


def _run(ds: Any, info: RasterInfo, predictor: Any, settings: GeoSettings, stage: Any, finals: dict[str, Path]
         ) -> tuple[TileRun, list[dict[str, Any]]]:
    from unip_hub.detection.outputs import rows_csv
    from unip_hub.geo.layers import write_layers
    from unip_hub.geo.preview import render_detection_preview
    from unip_hub.geo.scaling import raster_reading
    from unip_hub.inference.images import write_png_atomic
    from unip_hub.utils.atomic import write_text_atomic

    reading = raster_reading(ds, info, predictor.scaling, predictor.calibration)
    run, tiles = detect_tiles(ds, info, reading, predictor, settings)
    merged = merge_tiles(tiles, float(getattr(predictor.model, "nms_thresh", 0.5)))
    rows = _rows(ds, info, reading, merged, predictor.class_names, settings)
    write_layers({"detections": rows}, info, stage.path(finals["gpkg"]),
                 {"detections": stage.path(finals["geojson"])} if info.crs is not None else {}, DETECTION_FIELDS)
    write_text_atomic(rows_csv(rows, (*DETECTION_FIELDS, *_CSV_EXTRA)), stage.path(finals["csv"]))
    if settings.preview:
        picture = render_detection_preview(ds, info, reading, predictor, rows, settings.preview_side)
        write_png_atomic(picture, stage.path(finals["preview"]))
    return run, rows


def detect_tiles(ds: Any, info: RasterInfo, reading: Any, predictor: Any, settings: GeoSettings
                 ) -> tuple[TileRun, list[TileBoxes]]:
    """The detections of every tile, before they are merged: in raster pixels, with the temperatures under each box.

    Args:
        ds: The open source dataset.
        info: Its checked description (:func:`~unip_hub.geo.raster.inspect_raster`).
        reading: The raster-wide reading (:func:`~unip_hub.geo.scaling.raster_reading`).
        predictor: A :class:`~unip_hub.detection.predict.DetectionPredictor`.
        settings: The tiling (``tile_size``, ``overlap``, ``batch_tiles``) and ``prefetch``.

    Returns:
        The tile run (tiles, skipped, model and total seconds) and one :class:`~unip_hub.geo.tile_boxes.TileBoxes`
        per tile run, for :func:`~unip_hub.geo.tile_boxes.merge_tiles`.
    """
    from contextlib import closing

    from unip_hub.detection.outputs import box_temperatures
    from unip_hub.geo.tiled import iter_tile_batches, tile_rows

    start = time.perf_counter()
    run, skipped, found_tiles = TileRun(), [], []
    rows = tile_rows(info.height, info.width, settings.tiling)
    with closing(iter_tile_batches(ds, info, reading, predictor, rows, settings.tiling.batch, skipped,
                                   settings.reads_ahead(predictor))) as batches:
        for batch in batches:
            if batch.tensor is None:
                continue
            t0 = time.perf_counter()
            found = predictor.predict_torch(batch.tensor)  # one dict per tile, tile pixels
            run.model_s += time.perf_counter() - t0
            run.tiles += len(batch.boxes)
            run.batches.append(len(batch.boxes))
            for tile, frame, out in zip(batch.boxes, batch.frames, found):
                y1, _, x1, _ = tile
                boxes = out["boxes"].numpy().astype(np.float64).reshape(-1, 4)  # (n, 4) tile pixels
                masks = out["masks"].numpy() if "masks" in out else None  # (n, h, w) bool
                figures = box_temperatures(frame.celsius, boxes, masks) if frame.celsius is not None else \
                    [{} for _ in boxes]
                shifted = boxes + np.array([x1, y1, x1, y1], np.float64)  # (n, 4) raster pixels
                found_tiles.append(TileBoxes(tile, shifted, out["scores"].numpy(), out["labels"].numpy(),
                                             box_margins(shifted, tile, info.height, info.width), figures,
                                             _outlines(masks, x1, y1) if masks is not None else []))
    run.skipped = len(skipped)
    run.total_s = time.perf_counter() - start
    return run, found_tiles


def _outlines(masks: np.ndarray, x1: int, y1: int) -> list[Any]:
    """The outline (shapely, raster pixels) of each instance mask (n, h, w), or None for an empty mask."""
    import shapely
    from affine import Affine
    from rasterio.features import shapes
    from shapely.geometry import shape

    outlines = []
    for mask in masks:
        pieces = [shape(g) for g, _ in shapes(mask.astype(np.uint8), mask=mask, connectivity=4,
                                              transform=Affine.translation(x1, y1))]
        outlines.append(shapely.unary_union(pieces) if pieces else None)
    return outlines


def _read_figures(ds: Any, info: RasterInfo, reading: Any, m: Merged) -> dict[str, Any]:
    """Temperatures inside an object no tile showed whole, read again from the raster (inside its outline for
    Mask R-CNN)."""
    from rasterio.features import geometry_mask
    from rasterio.transform import Affine

    from unip_hub.detection.outputs import box_temperatures
    from unip_hub.geo.scaling import tile_frame

    x0, y0 = max(int(np.floor(m.box[0])), 0), max(int(np.floor(m.box[1])), 0)
    x1, y1 = min(int(np.ceil(m.box[2])), info.width), min(int(np.ceil(m.box[3])), info.height)
    values, valid = read_window(ds, info, (y0, y1, x0, x1))
    celsius = tile_frame(values, valid, reading, info.source).celsius  # (h, w)
    if celsius is None:
        return {}
    masks = None
    if m.outline is not None:
        masks = ~geometry_mask([m.outline], celsius.shape, Affine.translation(x0, y0))[None]  # (1, h, w)
    return box_temperatures(celsius, (m.box - np.array([x0, y0, x0, y0]))[None], masks)[0]


def _rows(ds: Any, info: RasterInfo, reading: Any, merged: list[Merged], names: Sequence[str],
          settings: GeoSettings) -> list[dict[str, Any]]:
    """One layer row per object: box, class, score, map geometry and area, temperatures, hot flag."""
    import shapely

    from unip_hub.geo.vectors import area_m2, to_map

    rows = []
    for i, m in enumerate(merged):
        figures = m.figures if m.figures is not None else _read_figures(ds, info, reading, m)
        pixels = m.outline if m.outline is not None else shapely.box(*m.box)
        geometry = to_map(pixels, info)
        area = area_m2(geometry, info)
        big = (area if info.crs is not None else float(pixels.area)) >= settings.min_area_m2
        t_max = figures.get("max")
        hot = settings.hot_above is not None and t_max is not None and t_max > settings.hot_above and big
        centre = to_map(shapely.Point((m.box[0] + m.box[2]) / 2, (m.box[1] + m.box[3]) / 2), info)
        rows.append({"id": i, "class": m.label, "class_name": names[m.label], "score": round(m.score, 4),
                     **{k: round(float(v), 2) for k, v in zip(("x0", "y0", "x1", "y1"), m.box)}, "area_m2": area,
                     **{f"t_{k}": figures.get(k) for k in ("min", "mean", "max", "p95")}, "hot": bool(hot),
                     "views": m.views, "centre_x": centre.x, "centre_y": centre.y, "geometry": geometry})
    return rows


def detect_raster_files(model_or_predictor: Any, rasters: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                        settings: GeoSettings | None = None) -> list[dict[str, Any]]:
    """:func:`detect_raster` on each file, one ``unip detect`` record each: ``input``, ``size``, the written paths,
    ``tiles``, ``skipped_tiles``, ``detections``, ``hot``; or ``input`` and the one-line ``error`` (and then no
    file of it)."""
    from unip_hub.geo.staging import raster_records

    predictor = _predictor(model_or_predictor)
    return raster_records(lambda path: detect_raster(predictor, path, out_dir, settings), rasters,
                          lambda r: {"detections": len(r.detections), "hot": sum(bool(d["hot"]) for d in r.detections)})
