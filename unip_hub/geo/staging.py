"""All-or-none outputs of one raster: every file is written under a hidden temporary name in the output folder and
renamed onto its final name only when all of them are done; on an error or Ctrl-C the temporaries are removed, so
nothing half-written is ever left under a final name. A re-run first removes what an earlier killed run left behind
(its temporaries), and at the end the outputs of an earlier run that this run does not write (e.g. a hotspot layer).

:func:`run_staged` is the frame of every raster command (open, check, stage, collect the warnings) and
:func:`raster_records` their per-file records for ``unip segment`` / ``unip detect``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StagedRun", "Staging", "raster_records", "run_staged"]

_MARK = ".unip-geo-tmp"


class Staging:
    """Temporary names for the final files of one raster; use as a context manager.

    Args:
        out_dir: The output folder (created).
        stem: The raster's output name; temporaries are ``.<stem>.<random>.unip-geo-tmp<suffix>``.
        owned: Every final name this kind of run can write for ``stem`` (stale ones are removed on success).
    """

    def __init__(self, out_dir: str | os.PathLike, stem: str, owned: Iterable[Path] = ()) -> None:
        self.out_dir = Path(out_dir)
        self.stem = stem
        self.owned = list(owned)
        self.staged: dict[Path, Path] = {}  # final -> temporary
        self.scratch: list[Path] = []

    def __enter__(self) -> Staging:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.out_dir.glob(f".{self.stem}.*{_MARK}*"):  # an earlier run killed mid-way
            leftover.unlink(missing_ok=True)
        return self

    def _name(self, suffix: str) -> Path:
        return self.out_dir / f".{self.stem}.{uuid.uuid4().hex[:8]}{_MARK}{suffix}"

    def path(self, final: str | os.PathLike) -> Path:
        """A temporary path (same suffix, not created) that becomes ``final`` on success."""
        final = Path(final)
        tmp = self._name(final.suffix)
        self.staged[final] = tmp
        return tmp

    def scratch_path(self, suffix: str) -> Path:
        """A temporary path removed at the end whatever happens."""
        tmp = self._name(suffix)
        self.scratch.append(tmp)
        return tmp

    def __exit__(self, kind: type | None, error: BaseException | None, tb: object) -> None:
        try:
            if kind is None:
                for final, tmp in self.staged.items():
                    if not tmp.exists():
                        raise FileNotFoundError(f"{final}: its temporary file {tmp.name} was never written")
                for final, tmp in self.staged.items():
                    os.replace(tmp, final)
                for stale in self.owned:
                    if stale not in self.staged:
                        stale.unlink(missing_ok=True)
        finally:
            for tmp in [*self.staged.values(), *self.scratch]:
                tmp.unlink(missing_ok=True)


@dataclass
class StagedRun:
    """What :func:`run_staged` did: the files written (kind -> path), the work's rows and tile run, the raster's
    description and what was warned about on the way."""

    paths: dict[str, str]
    rows: list[dict[str, Any]]
    run: Any
    info: Any
    warnings: list[str] = field(default_factory=list)


def run_staged(source: Any, out_dir: str | os.PathLike, settings: Any, name: str | None, suffixes: dict[str, str],
               work: Callable[[Any, Any, Staging, dict[str, Path]], tuple[Any, list[dict[str, Any]]]]) -> StagedRun:
    """Opens and checks a raster, then runs ``work(ds, info, stage, finals)`` with every output staged, all or none.

    Args:
        source: A GeoTIFF path or an open rasterio dataset (left open).
        out_dir: Output folder.
        settings: The :class:`~unip_hub.geo.segment.GeoSettings` (band, nodata, GDAL cache).
        name: Output file stem (default: the raster's file stem).
        suffixes: Output kind -> file name suffix; ``finals`` maps each kind to its final path.
        work: Writes the outputs through ``stage.path(finals[kind])`` and returns (tile run, rows).

    Warnings raised on the way are collected and issued again once, as ``UserWarning`` s.
    """
    import warnings

    import rasterio

    from unip_hub.geo.raster import inspect_raster, open_raster, require_geo

    require_geo()
    # rasterio.Env's GDAL_CACHEMAX is a number of bytes (GDAL_CACHEMAX=32 measured as a 32-byte cache): the cache
    # in bytes, so overlapping windows do not decompress the same blocks again
    with warnings.catch_warnings(record=True) as caught, rasterio.Env(GDAL_CACHEMAX=settings.cache_mb << 20), \
            open_raster(source) as ds:
        warnings.simplefilter("always")
        info = inspect_raster(ds, settings.band, settings.nodata)
        stem = name or Path(str(info.source)).stem
        finals = {kind: Path(out_dir) / f"{stem}{suffix}" for kind, suffix in suffixes.items()}
        with Staging(out_dir, stem, finals.values()) as stage:
            run, rows = work(ds, info, stage, finals)
        paths = {kind: str(path) for kind, path in finals.items() if path.exists() and path in stage.staged}
    notes = [str(w.message) for w in caught if "NotGeoreferenced" not in type(w.message).__name__]
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return StagedRun(paths, rows, run, info, notes)


def raster_records(process: Callable[[str | os.PathLike], Any], rasters: Iterable[str | os.PathLike],
                   summary: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """One command record per raster: ``input``, ``size``, the written paths and ``summary(result)`` of
    ``process(path)``; or ``input`` and the one-line ``error`` (and then no file of it)."""
    from unip_hub.geo.raster import GeoError

    records = []
    for path in rasters:
        try:
            r = process(path)
        except (GeoError, ValueError, OSError) as error:
            records.append({"input": str(path), "error": str(error)})
            continue
        records.append({"input": str(path), "size": [r.info.height, r.info.width], **r.paths, "tiles": r.run.tiles,
                        "skipped_tiles": r.run.skipped, **summary(r)})
    return records
