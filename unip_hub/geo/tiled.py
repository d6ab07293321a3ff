"""Streaming tiled inference over a raster larger than memory: windowed reads, batched tiles, blended logits, class
mask written window by window.

The windows are :func:`unip_hub.models.slide.window_boxes` over the whole raster (``tile`` x ``tile`` every
``tile - overlap`` pixels, the last row and column moved back to end at the border), so the blend is the one of
:func:`unip_hub.models.slide.slide_logits` on the whole raster: every window's logits weigh the same and are summed
per pixel (the division by the window count does not change the arg-max, so it is left out). Windows are run in
raster rows; a band of ``tile`` rows x the raster width holds the sums, and the rows no later window touches are
final after each window row: their arg-max is written and the band moves down. Peak memory is that band
(``classes x tile x width x 4`` bytes) plus a batch of tiles, whatever the raster's height; tiles are read inline
on the CPU (where the model's threads hold every core) and ahead in a thread when the model runs on a GPU.

Nodata pixels get the mask's nodata value, never a class; tiles that hold only nodata are skipped (and counted).
The per-tile model call is a plain callable (normalised tiles (n, C, h, w) -> logits (n, K, h, w)), so other
tile models plug into :func:`iter_tile_batches` the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unip_hub.constants import SLIDE_CROP
from unip_hub.geo.raster import Box, RasterInfo, read_window
from unip_hub.geo.scaling import RasterReading, tile_frame

__all__ = ["MaskWriter", "TileBatch", "TileRun", "Tiling", "finish_cog", "iter_tile_batches", "mask_dtype",
           "segment_tiles", "tile_rows"]

BLOCK = 512  # GeoTIFF / COG block side of the mask
_ARGMAX_ROWS = 64  # rows of the blend band turned into classes at a time


@dataclass(frozen=True)
class Tiling:
    """How a raster is cut into model inputs.

    Attributes:
        tile: Window side in pixels (clipped to the raster when it is smaller).
        overlap: Pixels shared by neighbouring windows (``stride = tile - overlap``).
        batch: Windows per model call.
    """

    tile: int = SLIDE_CROP
    overlap: int = 128
    batch: int = 4

    def __post_init__(self) -> None:
        if self.tile < 16:
            raise ValueError(f"tile size must be at least 16 pixels, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be in 0..{self.tile - 1} (below the tile size), got {self.overlap}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1 tile, got {self.batch}")


def tile_rows(height: int, width: int, tiling: Tiling) -> list[list[Box]]:
    """The windows (y1, y2, x1, x2) of the whole raster, grouped in rows (top to bottom, left to right)."""
    from unip_hub.models.slide import window_boxes

    stride = tiling.tile - tiling.overlap
    rows: dict[int, list[Box]] = {}
    for box in window_boxes(height, width, tiling.tile, stride):
        rows.setdefault(box[0], []).append(box)
    return [rows[y] for y in sorted(rows)]


def mask_dtype(num_classes: int) -> tuple[str, int]:
    """(dtype, nodata value) of a class mask: uint8 / 255 up to 255 classes, else uint16 / 65535."""
    return ("uint8", 255) if num_classes <= 255 else ("uint16", 65535)


@dataclass
class TileBatch:
    """Tiles of one window row read and prepared together.

    Attributes:
        row: Index of the window row.
        boxes: The windows (y1, y2, x1, x2).
        valid: (h, w) bool per window: data pixels.
        tensor: (n, C, h, w) model input, or ``None`` when every window of the batch was all nodata.
        frames: The windows' frames (stored values, degC where known).
    """

    row: int
    boxes: list[Box]
    valid: list[np.ndarray]
    tensor: torch.Tensor | None
    frames: list[Any] = field(default_factory=list)


def iter_tile_batches(ds: Any, info: RasterInfo, reading: RasterReading, predictor: Any, rows: list[list[Box]],
                      batch: int, skipped: list[Box], prefetch: bool = False) -> Iterator[TileBatch]:
    """The windows of ``rows``, ``batch`` at a time within a row, read and scaled with the raster-wide ``reading``
    (nodata pixels black) and made model inputs with ``predictor.to_tensor``; all-nodata windows are left out and
    appended to ``skipped``. A row whose windows are all nodata still yields one batch (``tensor`` None), so the
    caller sees every row. Windows are read as their batch fills: at most ``batch`` tiles are held, whatever the
    raster's width; with ``prefetch`` (see :meth:`~unip_hub.geo.segment.GeoSettings.reads_ahead`) a thread reads
    the next two batches while the caller runs the model. Close the iterator when stopping early
    (``contextlib.closing``): that stops the thread."""
    from unip_hub.utils.threads import Background

    batches = _read_batches(ds, info, reading, predictor, rows, batch, skipped)
    if not prefetch:
        yield from batches
        return
    reader = Background(lambda put: [put(b) for b in batches], size=2)
    try:
        yield from reader.items()
    finally:
        reader.close()


def _read_batches(ds: Any, info: RasterInfo, reading: RasterReading, predictor: Any, rows: list[list[Box]],
                  batch: int, skipped: list[Box]) -> Iterator[TileBatch]:
    """:func:`iter_tile_batches` without the thread."""
    for r, row in enumerate(rows):
        group: list[tuple[Box, np.ndarray, Any]] = []  # at most ``batch`` tiles held: memory does not grow with W
        yielded = False
        for i, box in enumerate(row):
            values, valid = read_window(ds, info, box)  # (h, w) each
            if not valid.any():
                skipped.append(box)
            else:
                group.append((box, valid, tile_frame(values, valid, reading, info.source)))
            if group and (len(group) == batch or i == len(row) - 1):
                yield _tile_batch(r, group, reading, predictor)
                group, yielded = [], True
        if not yielded:
            yield TileBatch(r, [], [], None)


def _tile_batch(r: int, group: list[tuple[Box, np.ndarray, Any]], reading: RasterReading, predictor: Any
                ) -> TileBatch:
    """The model input of a group of read tiles of window row ``r``."""
    tensors = []
    for _, valid, frame in group:
        gray = predictor.to_gray(frame, reading.bounds)  # (h, w) uint8, raster-wide bounds
        gray[~valid] = 0
        tensors.append(predictor.to_tensor(gray))  # (1, C, h, w)
    return TileBatch(r, [g[0] for g in group], [g[1] for g in group], torch.cat(tensors), [g[2] for g in group])


class MaskWriter:
    """Writes finished mask rows, top to bottom, to a tiled compressed GeoTIFF in whole block rows.

    Args:
        path: The (temporary) GeoTIFF to create.
        info: The source raster (size, CRS, transform).
        dtype: Mask dtype (see :func:`mask_dtype`).
        nodata: Mask nodata value.
    """

    def __init__(self, path: Path, info: RasterInfo, dtype: str, nodata: int) -> None:
        import rasterio

        self.ds = rasterio.open(path, "w", driver="GTiff", width=info.width, height=info.height, count=1,
                                dtype=dtype, crs=info.crs, transform=info.file_transform, nodata=nodata, tiled=True,
                                blockxsize=BLOCK, blockysize=BLOCK, compress="deflate")
        self.pending: list[np.ndarray] = []
        self.top = 0  # first row not written yet

    def write(self, rows: np.ndarray) -> None:
        """Appends finished rows (n, W); whole block rows go to the file."""
        self.pending.append(rows)
        held = sum(len(p) for p in self.pending)
        if held >= BLOCK:
            block = np.concatenate(self.pending)  # (held, W)
            n = held // BLOCK * BLOCK
            self._flush(block[:n])
            self.pending = [block[n:]] if n < held else []

    def _flush(self, rows: np.ndarray) -> None:
        from rasterio.windows import Window

        self.ds.write(rows, 1, window=Window(0, self.top, rows.shape[1], rows.shape[0]))
        self.top += rows.shape[0]

    def close(self) -> None:
        """Writes the rows left and closes the file."""
        if self.pending:
            self._flush(np.concatenate(self.pending))
            self.pending = []
        self.ds.close()


def finish_cog(src: Path, dst: Path) -> None:
    """Copies the tiled GeoTIFF ``src`` to ``dst`` as a Cloud-Optimized GeoTIFF (deflate, 512 blocks, overviews
    by the most common class)."""
    from rasterio.shutil import copy

    copy(src, dst, driver="COG", compress="DEFLATE", blocksize=BLOCK, overview_resampling="MODE")


@dataclass
class TileRun:
    """What a tiled run did: tiles run and skipped, the tiles of each model call, and seconds in the model vs. in
    total."""

    tiles: int = 0
    skipped: int = 0
    model_s: float = 0.0
    total_s: float = 0.0
    batches: list[int] = field(default_factory=list)


def segment_tiles(ds: Any, info: RasterInfo, reading: RasterReading, predictor: Any,
                  tile_fn: Callable[[torch.Tensor], torch.Tensor], num_classes: int, tiling: Tiling,
                  writer: MaskWriter, nodata: int, prefetch: bool = True) -> TileRun:
    """Runs ``tile_fn`` over the whole raster in windows and writes the blended class mask through ``writer``.

    Args:
        ds: The open source dataset.
        info: Its checked description.
        reading: The raster-wide reading (unit, bounds).
        predictor: Gives ``to_gray`` and ``to_tensor`` (a :class:`~unip_hub.inference.Predictor`).
        tile_fn: Normalised tiles (n, C, h, w) -> logits (n, K, h, w).
        num_classes: K.
        tiling: Tile size, overlap, batch.
        writer: Where finished rows go.
        nodata: Mask value of nodata pixels.
        prefetch: Read the next tiles in a thread while the model runs.
    """
    from contextlib import closing

    start = time.perf_counter()
    rows = tile_rows(info.height, info.width, tiling)
    th = min(tiling.tile, info.height)
    band = np.zeros((num_classes, th, info.width), np.float32)  # (K, th, W) summed logits
    band_valid = np.zeros((th, info.width), bool)  # (th, W)
    skipped: list[Box] = []
    run = TileRun()
    current = 0
    with closing(iter_tile_batches(ds, info, reading, predictor, rows, tiling.batch, skipped, prefetch)) as batches:
        for batch in batches:
            while current < batch.row:  # every window of the rows before is in: finish them
                band = _finish_row(rows, current, band, band_valid, writer, nodata, info.height)
                current += 1
            if batch.tensor is None:
                continue
            t0 = time.perf_counter()
            logits = tile_fn(batch.tensor).float().cpu().numpy()  # (n, K, h, w)
            run.model_s += time.perf_counter() - t0
            run.tiles += len(batch.boxes)
            run.batches.append(len(batch.boxes))
            top = rows[batch.row][0][0]
            for (y1, y2, x1, x2), valid, tile in zip(batch.boxes, batch.valid, logits):
                band[:, y1 - top:y2 - top, x1:x2] += tile
                band_valid[y1 - top:y2 - top, x1:x2] |= valid
    while current < len(rows):
        band = _finish_row(rows, current, band, band_valid, writer, nodata, info.height)
        current += 1
    run.skipped = len(skipped)
    run.total_s = time.perf_counter() - start
    return run


def _finish_row(rows: list[list[Box]], r: int, band: np.ndarray, valid: np.ndarray, writer: MaskWriter,
                nodata: int, height: int) -> np.ndarray:
    """Writes the rows of window row ``r`` that no later window covers, and moves the band down to the next row."""
    top = rows[r][0][0]
    end = rows[r + 1][0][0] if r + 1 < len(rows) else height
    n = end - top
    classes = np.empty((n, band.shape[2]), writer.ds.dtypes[0])  # (n, W)
    for a in range(0, n, _ARGMAX_ROWS):  # in slabs: the int64 argmax temporaries stay (64, W), not (n, W)
        b = min(a + _ARGMAX_ROWS, n)
        classes[a:b] = band[:, a:b].argmax(axis=0)
    classes[~valid[:n]] = nodata
    writer.write(classes)
    rest = band.shape[1] - n  # rows the next window row still adds to
    band[:, :rest] = band[:, n:]  # numpy copies overlapping slices safely
    band[:, rest:] = 0
    valid[:rest] = valid[n:]
    valid[rest:] = False
    return band
