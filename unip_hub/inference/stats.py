"""Temperatures out: statistics of a radiometric frame per predicted class and per connected region.

Per class: area in pixels, min / mean / max / 95th-percentile temperature. Per region (8-connected pixels of one
class, found with ``scipy.ndimage.label``; regions smaller than ``min_area`` are left out): the same numbers plus
centroid (row, column), bounding box ``[y0, x0, y1, x1)`` and a ``hot`` flag (max above ``hot_above`` degC).
Non-finite temperatures count towards areas, not towards the temperature figures. Written per image as JSON
and CSV (:func:`write_stats`), atomically. ``scipy`` comes with the ``thermal`` extra.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.utils.atomic import write_text_atomic

__all__ = ["CSV_FIELDS", "csv_rows", "region_stats", "stats_writers", "temperature_stats", "write_stats"]

CSV_FIELDS = ("level", "id", "class", "name", "area", "min", "mean", "max", "p95", "centroid_y", "centroid_x",
              "y0", "x0", "y1", "x1", "hot")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _summary(values: np.ndarray) -> dict[str, float | None]:
    """min / mean / max / p95 of the finite values (``None`` each when there are none), in degC, 3 decimals."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"min": None, "mean": None, "max": None, "p95": None}
    figures = (values.min(), values.mean(dtype=np.float64), values.max(), np.percentile(values, 95))
    return {k: round(float(v), 3) for k, v in zip(("min", "mean", "max", "p95"), figures)}


def _ndimage() -> Any:
    try:
        from scipy import ndimage
    except ImportError as error:
        raise RuntimeError("temperature statistics need scipy: pip install 'unip[thermal]' (or pass --no-thermal)"
                           ) from error
    return ndimage


def region_stats(celsius: np.ndarray, class_mask: np.ndarray, min_area: int = 1,
                 hot_above: float | None = None) -> list[dict[str, Any]]:
    """The connected regions of one boolean ``class_mask`` (H, W) with their temperature figures."""
    ndimage = _ndimage()
    labels, count = ndimage.label(class_mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return []
    rows, cols = np.nonzero(labels)  # the class's pixels only, in raster order
    flat = labels[rows, cols]
    areas = np.bincount(flat, minlength=count + 1)[1:]  # (count,) pixels per region
    centroids = np.stack([np.bincount(flat, weights=rows, minlength=count + 1)[1:] / areas,
                          np.bincount(flat, weights=cols, minlength=count + 1)[1:] / areas], axis=1)
    regions = []
    for i, box in enumerate(ndimage.find_objects(labels)):
        if areas[i] < min_area:
            continue
        inside = labels[box] == i + 1
        figures = _summary(celsius[box][inside])
        hot = hot_above is not None and figures["max"] is not None and figures["max"] > hot_above
        regions.append({"area": int(areas[i]), **figures,
                        "centroid": [round(float(c), 2) for c in centroids[i]],
                        "bbox": [box[0].start, box[1].start, box[0].stop, box[1].stop], "hot": bool(hot)})
    return regions


def temperature_stats(celsius: np.ndarray, mask: np.ndarray, class_names: Sequence[str] | None = None,
                      min_area: int = 1, hot_above: float | None = None) -> dict[str, Any]:
    """Per-class and per-region temperature figures of one frame.

    Args:
        celsius: Temperatures (H, W) in degC.
        mask: Class indices (H, W).
        class_names: Names of the classes (index order); ``"class_<i>"`` where missing.
        min_area: Smallest region reported, in pixels.
        hot_above: Regions whose max exceeds this (degC) are flagged ``hot``; ``None`` flags none.

    Returns:
        ``{"classes": [...], "regions": [...], "hotspots": n, "min_area", "hot_above", "unit": "degC"}``;
        classes and regions carry ``class`` (index) and ``name``; regions also an ``id`` (1-based).
    """
    celsius, mask = np.asarray(celsius), np.asarray(mask)
    if celsius.shape != mask.shape:
        raise ValueError(f"temperatures {celsius.shape} and mask {mask.shape} differ in size")
    if min_area < 1:
        raise ValueError(f"min_area must be >= 1 pixel, got {min_area}")
    names = list(class_names or [])
    classes, regions = [], []
    for c in np.unique(mask).tolist():
        name = names[c] if c < len(names) else f"class_{c}"
        where = mask == c
        classes.append({"class": int(c), "name": name, "area": int(where.sum()), **_summary(celsius[where])})
        for region in region_stats(celsius, where, min_area, hot_above):
            regions.append({"id": len(regions) + 1, "class": int(c), "name": name, **region})
    return {"unit": "degC", "min_area": int(min_area), "hot_above": hot_above, "classes": classes,
            "regions": regions, "hotspots": sum(r["hot"] for r in regions)}


def csv_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row (:data:`CSV_FIELDS`) per class and per region of a statistics table."""
    rows = [{"level": "class", **{k: c.get(k) for k in ("class", "name", "area", "min", "mean", "max", "p95")}}
            for c in stats["classes"]]
    for r in stats["regions"]:
        (cy, cx), (y0, x0, y1, x1) = r["centroid"], r["bbox"]
        rows.append({"level": "region", **{k: r[k] for k in ("id", "class", "name", "area", "min", "mean", "max",
                                                             "p95", "hot")},
                     "centroid_y": cy, "centroid_x": cx, "y0": y0, "x0": x0, "y1": y1, "x1": x1})
    return rows


def _csv_text(stats: dict[str, Any]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(stats))
    return text.getvalue()


def stats_writers(stats: dict[str, Any], stem: str | os.PathLike) -> dict[str, tuple[Path, Callable[[Path], Any]]]:
    """``{"stats_json": (path, writer), "stats_csv": (path, writer)}`` for ``<stem>.json`` / ``<stem>.csv``."""
    stem = Path(stem)
    as_json, as_csv = json.dumps(stats, indent=1), _csv_text(stats)
    return {"stats_json": (stem.with_name(stem.name + ".json"), lambda p: write_text_atomic(as_json, p)),
            "stats_csv": (stem.with_name(stem.name + ".csv"), lambda p: write_text_atomic(as_csv, p))}


def write_stats(stats: dict[str, Any], stem: str | os.PathLike) -> dict[str, str]:
    """Writes ``<stem>.json`` and ``<stem>.csv`` atomically; returns their paths."""
    written = {}
    for kind, (path, writer) in stats_writers(stats, stem).items():
        writer(path)
        written[kind] = str(path)
    return written
