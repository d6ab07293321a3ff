"""The ``unip segment`` / ``unip detect`` options of georeferenced rasters, and the settings they make.

Both commands add them with :func:`add_geo_arguments` and, for every input for which
:func:`unip_hub.geo.is_georeferenced` is true, call :func:`unip_hub.geo.segment_raster` /
:func:`unip_hub.geo.detect_raster` with :func:`geo_settings` (``--hot-above``, ``--quiet`` and the radiometric
options are the commands' own).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_geo_arguments", "geo_settings"]


def add_geo_arguments(parser: argparse.ArgumentParser, polygons: bool = True) -> None:
    """Adds the ``georeferenced rasters`` option group to ``parser`` (``polygons``: with the options of the class
    polygons, segmentation's)."""
    g = parser.add_argument_group("georeferenced rasters (GeoTIFF orthomosaics; pip install 'unip[geo]')")
    g.add_argument("--band", type=int, default=None, metavar="N",
                   help="1-based band with the thermal data (required for multi-band rasters)")
    g.add_argument("--nodata", type=float, default=None, metavar="VALUE", help="nodata value (default: the file's)")
    g.add_argument("--tile-size", type=int, default=512, metavar="PX", help="model window side (default 512)")
    g.add_argument("--overlap", type=int, default=128, metavar="PX",
                   help="pixels shared by neighbouring windows: logits blended, detections merged "
                        "(default 128)")
    g.add_argument("--batch-tiles", type=int, default=4, metavar="N", help="windows per model call (default 4)")
    g.add_argument("--min-area-m2", type=float, default=0.0, metavar="M2",
                   help="smallest hotspot / flagged polygon or box in m^2 (pixels without a CRS; default 0)")
    g.add_argument("--no-preview", action="store_true", help="no preview PNG")
    if polygons:
        g.add_argument("--simplify", type=float, default=0.0, metavar="PX",
                       help="polygon simplification tolerance in pixels (default 0: exact pixel outlines)")
        g.add_argument("--geo-classes", type=int, nargs="+", default=None, metavar="K",
                       help="classes to vectorise (default: all but 0, the background)")


def geo_settings(args: argparse.Namespace) -> Any:
    """:class:`~unip_hub.geo.segment.GeoSettings` from parsed ``unip segment`` options (missing ones default)."""
    from unip_hub.geo.segment import GeoSettings

    return GeoSettings(band=args.band, nodata=args.nodata, tile_size=args.tile_size, overlap=args.overlap,
                       batch_tiles=args.batch_tiles, simplify=getattr(args, "simplify", 0.0),
                       hot_above=getattr(args, "hot_above", None), min_area_m2=args.min_area_m2,
                       classes=getattr(args, "geo_classes", None), preview=not args.no_preview)
