"""Detections of overlapping tiles made one per object.

Every tile of a raster is detected on its own, so an object inside the overlap of two tiles is found twice, and an
object crossing a tile's border is seen cut off by it (a box ending at the tile's edge). Two detections of
neighbouring tiles are views of the same object when they have the same class and, inside the region both tiles
saw (the intersection of the two tiles), their boxes agree: the IoU of the two boxes clipped to that region reaches
``iou`` (the detector's own NMS threshold). There both tiles looked at the same pixels, so a whole view and a cut
view of one object, or two whole views, coincide; two different objects do not. Views are linked pairwise and
grouped transitively (an object over four tiles is one group).

Each group becomes one detection: the view seen most centrally -- the *whole* view (a box farther than
:data:`EDGE_PX` from every inner tile border) with the widest margin to its tile's inner borders, so the most
context around it; a detector's box of a cut object rarely ends exactly at the border, and a margin of a few pixels
loses to a view from the middle of a tile -- with that tile's temperatures; otherwise (an object larger than any
tile shows whole) the union of the cut views, whose temperatures are then read again from the raster. The score is
the group's best. Raster borders are not tile borders: a box ending there is whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unip_hub.geo.raster import Box

__all__ = ["EDGE_PX", "Merged", "TileBoxes", "box_margins", "merge_tiles"]

EDGE_PX = 2.0
"""A box side within this many pixels of an inner tile border is cut off by it."""


@dataclass
class TileBoxes:
    """The detections of one tile, in raster pixels.

    Attributes:
        tile: The tile (y1, y2, x1, x2).
        boxes: (n, 4) float XYXY in raster pixels.
        scores: (n,).
        labels: (n,) int 0..K-1.
        margins: (n,) pixels from each box to the nearest inner tile border (inf: none; see :func:`box_margins`).
        figures: Per detection: ``min`` / ``mean`` / ``max`` / ``p95`` degC inside it (empty dicts without
            temperatures).
        outlines: Per detection: the Mask R-CNN instance outline (shapely, raster pixels), or None (boxes only).
    """

    tile: Box
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    margins: np.ndarray
    figures: list[dict[str, Any]]
    outlines: list[Any] = field(default_factory=list)


@dataclass
class Merged:
    """One object: its box (raster pixels), best score, class, the views merged, and the temperatures and outline
    of its best whole view (``figures`` None: the views were all cut, read the temperatures again)."""

    box: np.ndarray
    score: float
    label: int
    views: int
    figures: dict[str, Any] | None
    outline: Any = None


def box_margins(boxes: np.ndarray, tile: Box, height: int, width: int) -> np.ndarray:
    """(n,) pixels between each box (n, 4) XYXY raster pixels of ``tile`` and the nearest of the tile's inner
    borders (the borders that are not the raster's; inf when the tile has none). A box within :data:`EDGE_PX` of
    one is cut off by it."""
    y1, y2, x1, x2 = tile
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    gaps = [b[:, 0] - x1 if x1 > 0 else None, b[:, 1] - y1 if y1 > 0 else None,
            x2 - b[:, 2] if x2 < width else None, y2 - b[:, 3] if y2 < height else None]
    margins = np.full(len(b), np.inf)
    for gap in gaps:
        if gap is not None:
            margins = np.minimum(margins, gap)
    return margins


def _clipped_iou(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(n, m) IoU of boxes a (n, 4) and b (m, 4), both clipped to ``region`` (4,) XYXY first."""
    lo, hi = region[:2], region[2:]
    a = np.concatenate([np.clip(a[:, :2], lo, hi), np.clip(a[:, 2:], lo, hi)], axis=1)  # (n, 4)
    b = np.concatenate([np.clip(b[:, :2], lo, hi), np.clip(b[:, 2:], lo, hi)], axis=1)  # (m, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # (n,)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # (m,)
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]  # (n, m)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _tile_pairs(tiles: list[Box]) -> list[tuple[int, int, np.ndarray]]:
    """(i, j, shared region XYXY) of every two tiles i < j that overlap."""
    import shapely

    rects = shapely.box(*np.array([[x1, y1, x2, y2] for y1, y2, x1, x2 in tiles], np.float64).T)
    tree = shapely.STRtree(rects)
    hits = tree.query(rects, predicate="intersects")  # (2, p) pairs
    pairs = []
    for i, j in zip(*hits):
        if i < j:
            (ay1, ay2, ax1, ax2), (by1, by2, bx1, bx2) = tiles[i], tiles[j]
            region = np.array([max(ax1, bx1), max(ay1, by1), min(ax2, bx2), min(ay2, by2)], np.float64)
            if region[2] > region[0] and region[3] > region[1]:
                pairs.append((int(i), int(j), region))
    return pairs


class _Groups:
    """Union-find over (tile, detection) views."""

    def __init__(self) -> None:
        self.parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(self, v: tuple[int, int]) -> tuple[int, int]:
        root = v
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while v != root:  # path compression
            self.parent[v], v = root, self.parent.get(v, v)
        return root

    def union(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def merge_tiles(tiles: list[TileBoxes], iou: float) -> list[Merged]:
    """One :class:`Merged` per object seen in one or more tiles (see the module docstring), in raster order (top
    to bottom, left to right by box corner)."""
    import shapely

    groups = _Groups()
    for i, j, region in _tile_pairs([t.tile for t in tiles]):
        a, b = tiles[i], tiles[j]
        if not len(a.boxes) or not len(b.boxes):
            continue
        ious = _clipped_iou(a.boxes, b.boxes, region)  # (n_a, n_b)
        same = (ious >= iou) & (ious > 0) & (a.labels[:, None] == b.labels[None, :])
        for p, q in zip(*np.nonzero(same)):
            groups.union((i, int(p)), (j, int(q)))
    members: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, t in enumerate(tiles):
        for p in range(len(t.boxes)):
            members.setdefault(groups.find((i, p)), []).append((i, p))
    merged = []
    for views in members.values():
        score = max(float(tiles[i].scores[p]) for i, p in views)
        label = int(tiles[views[0][0]].labels[views[0][1]])
        whole = [(i, p) for i, p in views if tiles[i].margins[p] > EDGE_PX]
        if whole:
            i, p = max(whole, key=lambda v: (float(tiles[v[0]].margins[v[1]]), float(tiles[v[0]].scores[v[1]])))
            outline = tiles[i].outlines[p] if tiles[i].outlines else None
            merged.append(Merged(tiles[i].boxes[p].copy(), score, label, len(views), tiles[i].figures[p], outline))
            continue
        boxes = np.stack([tiles[i].boxes[p] for i, p in views])  # (v, 4)
        box = np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])
        outlines = [tiles[i].outlines[p] for i, p in views if tiles[i].outlines]
        merged.append(Merged(box, score, label, len(views), None,
                             shapely.unary_union(outlines) if outlines else None))
    merged.sort(key=lambda m: (float(m.box[1]), float(m.box[0])))
    return merged
