"""The ``geo`` benchmark group: streaming segmentation of georeferenced rasters (:func:`unip_hub.geo.segment_raster`)
on synthetic orthomosaics of 2048^2, 4096^2 and 8192^2 pixels: peak memory per size, time per megapixel, and
end-to-end time against the model-only time on the same tiles.

Each raster (float32 degC, a CRS in metres, a nodata strip, warm panel rows with a few hot cells) is written window
by window to a temporary folder, then segmented in a fresh Python process of its own (``python -m
unip_hub.benchmark.geo RASTER JSON``), so the peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss`` of that process) is the
one of that raster alone. That process times the whole run (tiled inference, COG, polygons, preview) and the model
calls on the tiles within it (each timed on its own; ``ratio`` = model-only / end-to-end, the share of the wall
time spent in the model; target >= 0.9). ``UNIP_GEO_MODEL_PASS=1`` also runs the model alone again on the same
tiles in the same batches after the run (``model_only_repeat_s``; doubles the time).
The segmenter is an untrained ``unip_vit_tiny`` (speed does not depend on the weights).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.benchmark.config import BenchConfig

__all__ = ["SIZES", "geo_results", "write_ortho"]

SIZES = (2048, 4096, 8192)
QUICK_SIZES = (256, 384)
TILE, OVERLAP, BATCH = 512, 64, 4
PIXEL_M = 0.05  # ground sampling distance of the synthetic orthomosaic


def write_ortho(path: str | Path, size: int, seed: int = 0) -> Path:
    """Writes a ``size`` x ``size`` float32 degC GeoTIFF (EPSG:32633, 5 cm pixels) window by window: 22 degC
    ground, rows of 40 degC panels, a hot cell (85 degC) in every 7th panel, a nodata strip on the left."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rng = np.random.default_rng(seed)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32",
               "crs": "EPSG:32633", "transform": from_origin(500000.0, 5600000.0, PIXEL_M, PIXEL_M),
               "nodata": -9999.0, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as ds:
        for y in range(0, size, 512):
            rows = np.arange(y, min(y + 512, size))[:, None]
            cols = np.arange(size)[None, :]
            panel = ((rows % 96) < 60) & ((cols % 48) < 40)  # (h, W) panels 60 x 40 px
            hot = panel & ((rows // 96 + cols // 48) % 7 == 0) & ((rows % 96) < 12) & ((cols % 48) < 10)
            data = np.where(panel, 40.0, 22.0) + np.where(hot, 45.0, 0.0)
            data = (data + rng.normal(0, 0.3, data.shape)).astype(np.float32)
            data[:, : size // 32] = -9999.0
            ds.write(data, 1, window=Window(0, y, size, data.shape[0]))
    return Path(path)


def _child(raster: str, out_json: str, quick: bool, separate_model_pass: bool = False) -> None:
    """In its own process: segment ``raster`` end to end (the model calls timed on their own inside the run) and,
    with ``separate_model_pass``, the model alone again on the same tiles in the same batches; write JSON."""
    import resource

    import torch

    from unip_hub.geo import GeoSettings, segment_raster
    from unip_hub.geo.raster import require_geo
    from unip_hub.hub.segmenters import create_segmenter
    from unip_hub.inference import InferenceOptions, Predictor

    torch.manual_seed(0)
    tiny = {"embed_dim": 64, "depth": 2, "num_heads": 2} if quick else {}
    tile = 128 if quick else TILE
    seg = create_segmenter("unip_vit_tiny", num_classes=5, img_size=tile, aux=False, **tiny).eval()
    predictor = Predictor(seg)
    whole = InferenceOptions(mode="whole")
    x = torch.randn(BATCH, seg.backbone.in_chans, tile, tile)  # (B, C, T, T)
    predictor.logits_torch(x, whole)  # warm-up
    require_geo()  # imports rasterio, shapely, pyogrio once, outside the timed run (as torch is)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = GeoSettings(tile_size=tile, overlap=OVERLAP if not quick else 16, batch_tiles=BATCH, hot_above=60.0,
                           min_area_m2=0.05)
    with tempfile.TemporaryDirectory(prefix="unip-bench-geo-out-") as out:
        start = time.perf_counter()
        result = segment_raster(predictor, raster, out, settings)
        end_to_end = time.perf_counter() - start
    model_only = result.run.model_s  # the model calls on these tiles, timed around each call
    if not separate_model_pass:
        repeat = None
    else:  # the same tiles in the same batches again, the model alone (doubles the run time)
        start = time.perf_counter()
        for n in result.run.batches:
            predictor.logits_torch(x[:n], whole)
        repeat = time.perf_counter() - start
    figures = {"end_to_end_s": end_to_end, "model_only_s": model_only, "model_only_repeat_s": repeat,
               "tiled_pass_s": result.run.total_s, "tiles": result.run.tiles, "skipped": result.run.skipped,
               "polygons": len(result.polygons), "hotspots": sum(r["layer"] == "hotspots" for r in result.polygons),
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "rss_after_model_mb": rss_model / 1024, "params_m": sum(p.numel() for p in seg.parameters()) / 1e6,
               "torch_threads": torch.get_num_threads()}
    Path(out_json).write_text(json.dumps(figures))


def _measure(size: int, quick: bool, folder: Path) -> dict[str, Any]:
    raster = write_ortho(folder / f"ortho_{size}.tif", size)
    out = folder / f"figures_{size}.json"
    proc = subprocess.run([sys.executable, "-m", "unip_hub.benchmark.geo", str(raster), str(out), str(int(quick))],
                          capture_output=True, text=True)
    raster.unlink()
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"geo benchmark at {size}^2 failed: {tail[0]}")
    return json.loads(out.read_text())


def _variant(seconds: float, tiles: int, rss_mb: float | None) -> dict[str, Any]:
    """One row: tiles/s as img/s, ms per tile as latency, peak RSS as peak memory."""
    return {"gflops": None, "achieved_gflops_per_s": None, "fraction_of_peak": None,
            "latency_ms": 1e3 * seconds / max(tiles, 1), "throughput_img_per_s": tiles / seconds,
            "peak_memory_mb": rss_mb, "latencies_ms": [1e3 * seconds / max(tiles, 1)]}


def geo_results(cfg: BenchConfig, progress: bool = True) -> list[dict[str, Any]]:
    """One result per raster size and a summary (``rss_spread``: max / min peak RSS - 1; ``s_per_mp_spread``)."""
    sizes = QUICK_SIZES if cfg.quick else SIZES
    results = []
    with tempfile.TemporaryDirectory(prefix="unip-bench-geo-") as tmp:
        for size in sizes:
            if progress:
                print(f"measuring geo/unip_vit_tiny@{size}x{size} ...", file=sys.stderr, flush=True)
            f = _measure(size, cfg.quick, Path(tmp))
            mp = size * size / 1e6
            f["s_per_mp"] = f["end_to_end_s"] / mp
            f["ratio"] = f["model_only_s"] / f["end_to_end_s"]
            results.append({
                "name": f"geo/unip_vit_tiny@{size}x{size}", "group": "geo", "batch": BATCH,
                "params_m": f["params_m"], "meta": {"tile": TILE, "overlap": OVERLAP, "input": "float32 degC GeoTIFF"},
                "checks": {"end_to_end_over_model": f["ratio"], "s_per_mp": f["s_per_mp"],
                           "peak_rss_mb": f["peak_rss_mb"]},
                "peak_gflops_per_s": [], "ratio": f["ratio"], "geo": f,
                "variants": {"end-to-end": _variant(f["end_to_end_s"], f["tiles"], f["peak_rss_mb"]),
                             "model-only": _variant(f["model_only_s"], f["tiles"], None)}})
    rss = [r["geo"]["peak_rss_mb"] for r in results]
    per_mp = [r["geo"]["s_per_mp"] for r in results]
    results.append({"name": "geo/summary", "group": "geo", "batch": BATCH, "params_m": results[0]["params_m"],
                    "meta": {"sizes": list(sizes)}, "peak_gflops_per_s": [], "variants": {},
                    "checks": {"rss_spread": max(rss) / min(rss) - 1, "s_per_mp_spread": max(per_mp) / min(per_mp) - 1,
                               "min_end_to_end_over_model": min(r["ratio"] for r in results)}})
    return results


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3] == "1", os.environ.get("UNIP_GEO_MODEL_PASS") == "1")
