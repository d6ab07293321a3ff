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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.utils.atomic import write_text_atomic

__all__ = ["CSV_FIELDS", "csv_rows", "stats_writers", "temperature_stats", "write_stats"]

CSV_FIELDS = ("level", "id", "class", "name", "area", "min", "mean", "max", "p95", "centroid_y", "centroid_x",
              "y0", "x0", "y1", "x1", "hot")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


_FIGURES = ("min", "mean", "max", "p95")


@dataclass
class _Grouped:
    """The finite temperatures of a frame sorted by region (one stable sort; radix for up to 65536 regions), with
    per-region spans: region ``r`` holds ``ordered[starts[r]: starts[r] + sizes[r]]``. Regions are numbered class
    by class, so a class's regions are one contiguous span too. ``order`` (every pixel's flat index, sorted by
    region) and ``areas`` (pixels per region, non-finite ones included) serve the regions' centroids and boxes."""

    ordered: np.ndarray  # (N_finite,) float64
    starts: np.ndarray  # (R + 1,) int64, region 0 = no region
    sizes: np.ndarray  # (R + 1,) finite values per region
    sums: np.ndarray  # (R + 1,) float64
    order: np.ndarray | None = None  # (H * W,) int64
    areas: np.ndarray | None = None  # (R + 1,) int64

    @classmethod
    def of(cls, celsius: np.ndarray, labels: np.ndarray, count: int) -> _Grouped:
        values, flat = celsius.ravel(), labels.ravel()
        areas = np.bincount(flat, minlength=count + 1)
        order = np.argsort(flat.astype(np.uint16) if count < 1 << 16 else flat, kind="stable")
        ordered = values[order].astype(np.float64)  # (H * W,) by region
        finite = np.isfinite(ordered)
        sizes = areas
        if not finite.all():  # drop NaN / inf: the spans shrink, the order within them stays
            ordered, sizes = ordered[finite], np.bincount(flat[order[finite]], minlength=count + 1)
        starts = np.cumsum(sizes) - sizes
        return cls(ordered, starts, sizes, _span_sums(ordered, starts, sizes), order, areas)

    def merged(self, group: np.ndarray, groups: int) -> _Grouped:
        """The spans of ``groups`` consecutive blocks of regions (``group[r]`` of region ``r``, non-decreasing)."""
        sizes = np.bincount(group, weights=self.sizes, minlength=groups).astype(np.int64)
        starts = np.cumsum(sizes) - sizes
        return _Grouped(self.ordered, starts, sizes, _span_sums(self.ordered, starts, sizes))

    def figures(self, wanted: np.ndarray) -> dict[str, list]:
        """min / mean / max / p95 of the spans ``wanted``: lists of floats rounded to 3 decimals, ``None`` where a
        span holds no finite value."""
        figures = {k: np.full(len(wanted), np.nan) for k in _FIGURES}
        has = self.sizes[wanted] > 0
        present = wanted[has]
        if present.size:
            nonempty = np.flatnonzero(self.sizes)  # their spans tile ``ordered``: reduceat runs over each
            where = np.searchsorted(nonempty, present)
            figures["min"][has] = np.minimum.reduceat(self.ordered, self.starts[nonempty])[where]
            figures["max"][has] = np.maximum.reduceat(self.ordered, self.starts[nonempty])[where]
            figures["mean"][has] = self.sums[present] / self.sizes[present]
            figures["p95"][has] = self._p95(present)
        return {k: [None if np.isnan(v) else v for v in np.round(a, 3).tolist()] for k, a in figures.items()}

    def _p95(self, spans: np.ndarray) -> np.ndarray:
        """The 95th percentile (numpy's linear method) of each span: one partition per span."""
        out = np.empty(len(spans))
        for i, (start, size) in enumerate(zip(self.starts[spans].tolist(), self.sizes[spans].tolist())):
            pos = 0.95 * (size - 1)
            lo = int(pos)
            t = pos - lo
            if t == 0.0:
                out[i] = np.partition(self.ordered[start: start + size], lo)[lo]
                continue
            part = np.partition(self.ordered[start: start + size], (lo, lo + 1))
            a, b = part[lo], part[lo + 1]
            out[i] = b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t  # numpy's lerp, both branches
        return out


def _span_sums(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The float64 sum of each span ``values[starts[r]: starts[r] + sizes[r]]`` (0 for empty spans): one
    ``reduceat`` over the non-empty spans, which tile ``values``."""
    sums = np.zeros(len(sizes), np.float64)
    nonempty = np.flatnonzero(sizes)
    if nonempty.size:
        sums[nonempty] = np.add.reduceat(values, starts[nonempty], dtype=np.float64)
    return sums


def _ndimage() -> Any:
    try:
        from scipy import ndimage
    except ImportError as error:
        raise RuntimeError("temperature statistics need scipy: pip install 'unip[thermal]' (or pass --no-thermal)"
                           ) from error
    return ndimage


def _label_classes(mask: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """8-connected regions of every class, numbered 1.. over the whole frame (class by class, raster order within
    a class): labels (H, W) int32 and the class of each region (R,)."""
    ndimage = _ndimage()
    top = int(mask.max(initial=0))
    small = mask.astype(np.uint8, copy=False) if top < 255 else mask  # (H, W): cheaper comparisons, and + 1 still fits
    labels = np.zeros(mask.shape, np.int32)  # first each region's number within its class
    boxes = ndimage.find_objects(small + 1)  # (class + 1) -> its bounding box: label only there
    offsets = np.zeros(top + 1, np.int32)  # regions of the classes before each class
    region_class, offset = [], 0
    for c in classes:
        box = boxes[c]
        found, count = ndimage.label(small[box] == c, structure=_EIGHT_CONNECTED, output=np.int32)
        labels[box] += found  # 0 off class c: the other classes' pixels keep their numbers
        offsets[c] = offset
        region_class.append(np.full(count, c))
        offset += count
    labels += offsets[small]  # numbered over the frame
    return labels, np.concatenate(region_class) if region_class else np.zeros(0, np.int64)


@lru_cache(maxsize=4)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every pixel, flattened, int32 (read-only, shared by the frames of a video)."""
    rows, cols = np.indices(shape, dtype=np.int32).reshape(2, -1)
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols


def _regions(grouped: _Grouped, shape: tuple[int, int], min_area: int,
             hot_above: float | None) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows of the regions 1..R of ``grouped`` (a frame of ``shape``) with at least ``min_area`` pixels, and their
    0-based indices. Centroids and boxes come from the pixels' rows and columns in region order (reduceat)."""
    areas = grouped.areas[1:]  # (R,) pixels per region, non-finite ones included
    kept = np.flatnonzero(areas >= min_area)
    if kept.size == 0:
        return [], kept
    starts = (np.cumsum(grouped.areas) - grouped.areas)[1:]  # (R,) increasing: every region has a pixel
    y, x = (axis[grouped.order] for axis in _grid(shape))  # (H * W,) row / column of each pixel, by region
    sums = np.stack([np.add.reduceat(a, starts, dtype=np.int64)[kept] for a in (y, x)], axis=1)  # (R_kept, 2)
    centroids = np.round(sums / areas[kept, None], 2).tolist()
    low = [np.minimum.reduceat(a, starts)[kept] for a in (y, x)]  # region 0 (no region) sorts first: left out
    high = [np.maximum.reduceat(a, starts)[kept] + 1 for a in (y, x)]
    boxes = np.stack([low[0], low[1], high[0], high[1]], axis=1).tolist()  # (R_kept, 4) [y0, x0, y1, x1)
    figures = grouped.figures(kept + 1)
    out = []
    for j, i in enumerate(kept.tolist()):
        top = figures["max"][j]
        out.append({"area": int(areas[i]), **{k: figures[k][j] for k in _FIGURES}, "centroid": centroids[j],
                    "bbox": boxes[j], "hot": hot_above is not None and top is not None and top > hot_above})
    return out, kept


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
    if mask.size and mask.min() < 0:
        raise ValueError(f"mask holds a negative class index ({int(mask.min())})")
    names = list(class_names or [])
    name_of = [names[c] if c < len(names) else f"class_{c}" for c in range(int(mask.max(initial=0)) + 1)]
    areas = np.bincount(mask.ravel(), minlength=len(name_of))
    present = np.flatnonzero(areas)
    labels, region_class = _label_classes(mask, present.tolist())
    grouped = _Grouped.of(celsius, labels, len(region_class))
    by_class = grouped.merged(np.concatenate([[0], region_class]), len(name_of))  # region 0 is empty
    figures = by_class.figures(present)
    classes = [{"class": c, "name": name_of[c], "area": int(areas[c]), **{k: figures[k][j] for k in _FIGURES}}
               for j, c in enumerate(present.tolist())]
    rows, kept = _regions(grouped, mask.shape, min_area, hot_above)
    regions = [{"id": n, "class": int(c), "name": name_of[c], **row}
               for n, (c, row) in enumerate(zip(region_class[kept].tolist(), rows), start=1)]
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
