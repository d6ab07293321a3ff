"""Running temperature statistics of a region (zonal statistics) that can be merged across windows.

A region's data pixels are kept as values (exact min / mean / max / 95th percentile); past ``EXACT_PIXELS`` they
turn into a sparse histogram of 0.01 degC bins (the percentile to within a bin; min, mean and max stay exact), so
the memory of a region larger than memory stays small. Pieces of one region found in several windows merge. With a
class mask, the pixels of each class under the region are counted too (its most common class).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EXACT_PIXELS", "Zone", "percentile95", "zones_of"]

EXACT_PIXELS = 1 << 20
_BIN = 0.01  # degC


def percentile95(values: np.ndarray) -> float:
    """``np.percentile(values, 95)`` (linear method, the same float arithmetic in the values' dtype) of finite
    values without numpy's per-call overhead: one partition for the two order statistics and numpy's lerp."""
    n = values.size
    q = np.true_divide(values.dtype.type(95), values.dtype.type(100)) if values.dtype.kind == "f" else 0.95
    virtual = (n - 1) * q  # numpy's virtual index, in the values' dtype
    if virtual >= n - 1:  # numpy then takes the largest value
        return float(values.max())
    lo = int(np.floor(virtual))
    part = np.partition(values, (lo, lo + 1))  # (n,)
    a, b = part[lo], part[lo + 1]
    gamma = np.asarray(virtual - lo, dtype=np.asarray(virtual).dtype)
    diff = b - a
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)


def _merge_hist(bins: np.ndarray | None, counts: np.ndarray | None, more_bins: np.ndarray, more_counts: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """The sum of two sparse histograms (sorted bin indices, counts)."""
    if bins is None or counts is None:
        return more_bins, more_counts
    merged, inverse = np.unique(np.concatenate([bins, more_bins]), return_inverse=True)
    return merged, np.bincount(inverse, weights=np.concatenate([counts, more_counts])).astype(np.int64)


class Zone:
    """The running statistics of one region (see the module docstring)."""

    __slots__ = ("bins", "classes", "count", "counts", "hi", "lo", "parts", "total")

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.bins: np.ndarray | None = None  # sparse histogram: sorted bin indices and their counts
        self.counts: np.ndarray | None = None
        self.count, self.total, self.lo, self.hi = 0, 0.0, np.inf, -np.inf
        self.classes: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        """Adds data pixel temperatures (degC)."""
        if values.size == 0:
            return
        self.count += values.size
        self.total += float(values.sum(dtype=np.float64))
        self.lo, self.hi = min(self.lo, float(values.min())), max(self.hi, float(values.max()))
        self.parts.append(values)
        self._bound()

    def add_classes(self, counts: np.ndarray) -> None:
        """Adds pixel counts per class (K,)."""
        if self.classes is None:
            self.classes = np.zeros(counts.size, np.int64)
        self.classes[: counts.size] += counts

    def merge(self, other: Zone) -> None:
        """Adds another piece of the same region."""
        if other.classes is not None:
            self.add_classes(other.classes)
        self.count += other.count
        self.total += other.total
        self.lo, self.hi = min(self.lo, other.lo), max(self.hi, other.hi)
        self.parts += other.parts
        if other.bins is not None and other.counts is not None:
            self.bins, self.counts = _merge_hist(self.bins, self.counts, other.bins, other.counts)
        self._bound()

    def _bound(self) -> None:
        """Values -> histogram once there are too many (or a histogram exists already)."""
        if self.parts and (self.count > EXACT_PIXELS or self.bins is not None):
            index = np.floor(np.concatenate(self.parts) / _BIN).astype(np.int64)
            self.parts = []
            self.bins, self.counts = _merge_hist(self.bins, self.counts, *np.unique(index, return_counts=True))

    def result(self) -> dict[str, Any]:
        """``t_min``, ``t_mean``, ``t_max``, ``t_p95`` (NaN without data pixels) and ``majority_class`` (or None)."""
        out: dict[str, Any] = dict.fromkeys(("t_min", "t_mean", "t_max", "t_p95"), float("nan"))
        if self.count:
            if self.bins is None or self.counts is None:
                p95 = percentile95(self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts))
            else:
                rank = min(int(np.searchsorted(np.cumsum(self.counts), 0.95 * self.count)), self.bins.size - 1)
                p95 = min(max((float(self.bins[rank]) + 0.5) * _BIN, self.lo), self.hi)
            out = {"t_min": self.lo, "t_mean": self.total / self.count, "t_max": self.hi, "t_p95": p95}
        out["majority_class"] = None if self.classes is None else int(self.classes.argmax())
        return out


def zones_of(components: np.ndarray, n: int, celsius: np.ndarray | None, valid: np.ndarray,
             classes: np.ndarray | None, num_classes: int) -> list[Zone]:
    """One :class:`Zone` per component 1..n of a window's component image (0: none).

    Args:
        components: int32 (h, w) component ids.
        n: Number of components.
        celsius: (h, w) degC, or None (no temperatures).
        valid: (h, w) data pixels.
        classes: (h, w) class mask (values >= ``num_classes`` are nodata), or None.
        num_classes: K.
    """
    zones = [Zone() for _ in range(n)]
    if celsius is not None:
        keep = (components > 0) & valid & np.isfinite(celsius)
        owner, values = components[keep] - 1, celsius[keep].astype(np.float32)  # (m,) each, raster order
        if n <= np.iinfo(np.uint16).max:
            owner = owner.astype(np.uint16)  # a stable sort of 16-bit keys is a radix sort: O(m)
        order = np.argsort(owner, kind="stable")  # each zone's values stay in raster order
        owner, values = owner[order], values[order]
        if owner.size:
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # (z,) first value of each zone
            for o, start, end in zip(owner[starts].tolist(), starts.tolist(), [*starts[1:].tolist(), owner.size]):
                zones[o].add(values[start:end])
    if classes is not None:
        keep = (components > 0) & (classes < num_classes)
        pairs = np.bincount((components[keep] - 1).astype(np.int64) * num_classes + classes[keep],
                            minlength=n * num_classes).reshape(n, num_classes)  # (n, K)
        for zone, counts in zip(zones, pairs):
            zone.add_classes(counts)
    return zones
