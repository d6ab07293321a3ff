"""Polygons from a raster mask, whole across band seams, with areas and temperatures, written as GeoPackage
(source CRS) and GeoJSON (WGS84, RFC 7946).

A mask larger than memory is vectorised in full-width bands of rows fed top to bottom (:class:`Vectorizer`; the
tiled pass hands its finished rows over as they come, so nothing is read twice). Each band's 4-connected regions of
equal kept values are labelled once (``scipy.ndimage.label``) and traced
(``rasterio.features.shapes`` on the component image, so every polygon is known by its component id; pixel
coordinates, every vertex an integer); their temperatures are grouped per component into
:class:`~unip_hub.geo.zonal.Zone` s. A region that reaches a band's last row is linked to the pieces below it where
equal kept values meet across the seam, and each group of linked pieces becomes one polygon (a coverage union) with
the outline a trace of the whole mask would give, and one merged zone. Regions come out ordered by their top-left
pixel, whatever the bands. Areas are in m^2: planar for a projected CRS, geodesic (``pyproj.Geod``) for a CRS in
degrees, none without a CRS. The layers are written by :mod:`unip_hub.geo.layers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np

from unip_hub.geo.raster import RasterInfo
from unip_hub.geo.zonal import Zone, zones_of

__all__ = ["FIELDS", "Chunk", "Vectorizer", "area_m2", "band_rows", "to_map"]

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


def _label(region: np.ndarray) -> tuple[np.ndarray, int]:
    """``region (h, w) bool -> (ids (h, w) int32, n)``: 4-connected component ids 1..n (0 outside)."""
    from scipy import ndimage

    ids, found = ndimage.label(region, output=np.int32)  # default structure: 4-connected
    return ids, int(found)


def _components(labels: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 (h, w) ids 1..n of the 4-connected regions of equal kept values (0 elsewhere), and their values (n,)."""
    kept = labels[keep]  # (m,)
    present = np.unique(kept) if kept.dtype.itemsize > 2 else np.flatnonzero(np.bincount(kept.ravel()))
    components: np.ndarray | None = None  # (h, w)
    values: list[np.ndarray] = []
    n = 0
    for value in present:
        region = labels == value
        region &= keep
        ids, found = _label(region)  # (h, w) int32, 0 outside the region
        if components is None:
            components = ids
        else:
            np.add(ids, n, out=components, where=region)  # components are 0 inside the region
        values.append(np.full(found, value, labels.dtype))
        n += found
    if components is None:
        return np.zeros(labels.shape, np.int32), np.zeros(0, labels.dtype)
    return components, np.concatenate(values)


def _outlines(components: np.ndarray, n: int, top: int) -> np.ndarray:
    """Object array (n,): the exact pixel outline Polygon of each component 1..n, in raster pixel coordinates
    (``top``: the window's first row)."""
    import shapely
    from affine import Affine
    from rasterio.features import shapes

    raw = list(shapes(components, mask=components > 0, connectivity=4, transform=Affine.translation(0, top)))
    rings = [ring for g, _ in raw for ring in g["coordinates"]]
    per_ring = np.fromiter(map(len, rings), np.int64, len(rings))  # (r,) vertices of each ring
    per_polygon = np.fromiter((len(g["coordinates"]) for g, _ in raw), np.int64, len(raw))  # (p,) rings of each
    xy = np.array(list(chain.from_iterable(rings)), np.float64).reshape(-1, 2)  # (v, 2)
    linear = shapely.linearrings(xy, indices=np.repeat(np.arange(len(rings)), per_ring))
    built = shapely.polygons(linear, indices=np.repeat(np.arange(len(raw)), per_polygon))  # first ring: shell
    polygons = np.empty(n, object)
    polygons[np.fromiter((int(v) for _, v in raw), np.int64, len(raw)) - 1] = built
    return polygons


def _rebuild(xy: np.ndarray, ring_of: np.ndarray, rings_per: np.ndarray) -> np.ndarray:
    """Polygons (p,) from closed rings' vertices (v, 2), the ring of each vertex (v,) and rings per polygon (p,),
    shell first."""
    import shapely

    rings = shapely.linearrings(xy, indices=ring_of)
    return shapely.polygons(rings, indices=np.repeat(np.arange(rings_per.size), rings_per))


def _on_seam_corners(polygons: np.ndarray, seams: np.ndarray) -> np.ndarray:
    """The polygons with a vertex at every pixel corner of their edges that lie along a seam row."""
    import shapely

    xy, ring_of = shapely.get_coordinates(shapely.get_rings(polygons), return_index=True)  # (v, 2), (v,)
    x, y = xy[:, 0], xy[:, 1]
    run = np.r_[ring_of[1:] == ring_of[:-1], False]  # (v,) an edge to the next vertex of the same ring
    dx = np.r_[x[1:] - x[:-1], 0.0]  # (v,)
    along = run & (np.r_[y[1:], np.nan] == y) & np.isin(y, seams)  # (v,) horizontal edge on a seam row
    reps = np.where(along, np.abs(dx), 1).astype(np.int64)  # (v,) the vertex and the corners after it
    start = np.repeat(np.arange(x.size), reps)  # (v',)
    step = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)  # (v',) 0, 1, ... per vertex
    out = np.column_stack([x[start] + step * np.sign(dx)[start], y[start]])  # (v', 2)
    return _rebuild(out, ring_of[start], shapely.get_num_interior_rings(polygons) + 1)


def _without_seam_vertices(polygon: Any, seams: np.ndarray) -> Any:
    """``polygon`` without the vertices on seam rows where its outline goes straight on (cuts left them)."""
    import shapely

    xy, ring_of = shapely.get_coordinates(shapely.get_rings(polygon), return_index=True)  # (v, 2), (v,)
    open_ = np.r_[ring_of[1:] == ring_of[:-1], False]  # (v,) drops each ring's closing vertex
    xy, ring_of = xy[open_], ring_of[open_]
    first = np.r_[True, ring_of[1:] != ring_of[:-1]]  # (v,)
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], ring_of.size]
    index = np.arange(ring_of.size)
    prev, nxt = index - 1, index + 1
    prev[starts], nxt[ends - 1] = ends - 1, starts  # cyclic neighbours within each ring
    x, y = xy[:, 0], xy[:, 1]
    straight = ((y[prev] == y) & (y[nxt] == y)) | ((x[prev] == x) & (x[nxt] == x))
    keep = ~(straight & np.isin(y, seams))
    xy, ring_of = xy[keep], ring_of[keep]
    first = np.r_[True, ring_of[1:] != ring_of[:-1]]
    at = np.r_[np.flatnonzero(first)[1:], ring_of.size]  # where each ring's closing vertex goes
    xy = np.insert(xy, at, xy[first], axis=0)
    ring_of = np.insert(ring_of, at, ring_of[first])
    return _rebuild(xy, ring_of, np.array([shapely.get_num_interior_rings(polygon) + 1]))[0]


def _union(pieces: list[Any], seams: np.ndarray) -> Any:
    """One polygon from pieces of a region cut at the rows ``seams``, with the outline a trace of the whole region
    would have. The pieces' edges along the seams get a vertex at every pixel corner, so shared edges match and a
    coverage union (no noding, several times faster than ``union_all``) dissolves them; the vertices the cuts left
    on straight runs are then dropped."""
    import shapely

    merged = shapely.coverage_union_all(_on_seam_corners(np.array(pieces, object), seams))
    if merged.geom_type != "Polygon" or merged.area != sum(p.area for p in pieces):  # not one piece: be safe
        merged = shapely.union_all(pieces)
    return _without_seam_vertices(merged, seams) if merged.geom_type == "Polygon" else merged


class Vectorizer:
    """The regions of a raster fed as full-width bands of rows, top to bottom (the bands of :func:`band_rows`).

    Each band's regions are traced (``rasterio.features.shapes`` on its component image) and their zones gathered;
    a region that touches the band's last row may go on in the next band: the two are linked where equal kept
    values meet across the seam, and a group of linked pieces is unioned once no piece of it reaches the newest
    band's last row. Memory: one band plus the groups still open.

    Args:
        height: Rows of the raster.
        width: Columns of the raster.
        num_classes: K of ``Chunk.classes`` (0: none counted).
    """

    def __init__(self, height: int, width: int, num_classes: int = 0) -> None:
        self.height, self.width, self.num_classes = height, width, num_classes
        self.top = 0  # first row of the next band
        self.done: list[tuple[int, Any, dict[str, Any]]] = []
        self.pieces: dict[int, tuple[int, Any, Zone]] = {}  # open piece id -> (value, polygon, zone)
        self.parent: dict[int, int] = {}  # union-find over open piece ids
        self.members: dict[int, list[int]] = {}  # root -> its group's piece ids
        self.below = np.full(width, -1, np.int64)  # (W,) open piece id of each pixel of the last row fed
        self.below_values: np.ndarray | None = None  # (W,) values of the last row fed
        self.next_id = 0
        self.seams: list[int] = []  # rows where bands were cut

    def _root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _link(self, a: int, b: int) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra != rb:
            if len(self.members[ra]) < len(self.members[rb]):
                ra, rb = rb, ra
            self.parent[rb] = ra
            self.members[ra] += self.members.pop(rb)

    def add(self, c: Chunk) -> None:
        """Vectorises the next band (h, width) of rows."""
        top = self.top
        self.top += c.labels.shape[0]
        if top > 0:
            self.seams.append(top)
        if not c.keep.any():
            self.below[:] = -1
            self._close_groups()
            return
        components, values = _components(c.labels, c.keep)  # (h, w), (n,)
        n = values.size
        polygons = _outlines(components, n, top)
        zones = zones_of(components, n, c.celsius, c.keep if c.valid is None else c.valid, c.classes,
                         self.num_classes)
        first, last = components[0], components[-1]  # (W,) each
        above = (self.below >= 0) & (first > 0)  # (W,) pixels that continue a piece of the band above
        if self.below_values is not None:
            above &= self.below_values == c.labels[0]
        seam = np.zeros(n + 1, bool)  # (n + 1,) components that are pieces of a longer region
        seam[first[above]] = True
        if self.top < self.height:
            seam[last] = True
        seam[0] = False
        ids = np.full(n + 1, -1, np.int64)  # (n + 1,) open piece id of each component
        ids[seam] = np.arange(self.next_id, self.next_id + int(seam.sum()))
        self.next_id += int(seam.sum())
        for k in range(n):
            if seam[k + 1]:
                i = int(ids[k + 1])
                self.pieces[i] = (int(values[k]), polygons[k], zones[k])
                self.parent[i], self.members[i] = i, [i]
            else:
                self.done.append((int(values[k]), polygons[k], zones[k].result()))
        if above.any():
            pairs = np.unique(np.stack([self.below[above], ids[first[above]]]), axis=1)  # (2, p)
            for a, b in pairs.T.tolist():
                self._link(a, b)
        self.below = ids[last] if self.top < self.height else np.full(self.width, -1, np.int64)
        self.below_values = c.labels[-1].copy()
        self._close_groups()

    def _close_groups(self) -> None:
        """Unions the groups none of whose pieces reaches the last row fed."""

        alive = {self._root(i) for i in np.unique(self.below[self.below >= 0]).tolist()}
        for root in [r for r in self.members if r not in alive]:
            group = self.members.pop(root)
            value, polygon, zone = self.pieces[group[0]]
            if len(group) > 1:
                polygon = _union([self.pieces[i][1] for i in group], np.array(self.seams, np.float64))
                for i in group[1:]:
                    zone.merge(self.pieces[i][2])
            for i in group:
                del self.pieces[i], self.parent[i]
            self.done.append((value, polygon, zone.result()))

    def close(self) -> list[tuple[int, Any, dict[str, Any]]]:
        """Every region: (value, Polygon in pixel coordinates, :meth:`Zone.result` of its temperatures and
        classes), ordered by the region's top-left pixel (row, then column), whatever the bands."""
        import shapely

        self.below[:] = -1
        self._close_groups()
        done, self.done = self.done, []
        if not done:
            return done
        polygons = np.array([p for _, p, _ in done], object)
        top = shapely.bounds(polygons)[:, 1]  # (n,)
        xy, owner = shapely.get_coordinates(polygons, return_index=True)  # (v, 2), (v,)
        on_top = xy[:, 1] == top[owner]  # holes never reach a region's first row
        left = np.full(len(done), np.inf)
        np.minimum.at(left, owner[on_top], xy[on_top, 0])
        return [done[i] for i in np.lexsort((left, top)).tolist()]


def band_rows(width: int, chunk: int) -> int:
    """Rows of the full-width bands that hold about ``chunk`` x ``chunk`` pixels."""
    return max(1, chunk * chunk // max(width, 1))


def to_map(polygon: Any, info: RasterInfo) -> Any:
    """A pixel-coordinate polygon (or an array of them) in the raster's map coordinates (pixel coordinates without
    a CRS); the arithmetic of ``shapely.affinity.affine_transform``, in one call for an array."""
    import shapely

    t = info.transform

    def move(xy: np.ndarray) -> np.ndarray:  # (v, 2) pixel -> (v, 2) map
        x, y = xy.T
        return np.column_stack([t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f])

    return shapely.transform(polygon, move)


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
