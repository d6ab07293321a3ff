"""Georeferenced rasters (unip_hub.geo): streaming tiled segmentation, COG masks, polygons with temperatures.

Every raster is built here with rasterio: float degC with hot rectangles at known map coordinates, a CRS in metres
or in degrees, nodata areas. The model is a tiny random segmenter; the hotspot layer (temperature > --hot-above)
does not depend on it, so the polygons' coordinates and temperatures are known exactly.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

rasterio = pytest.importorskip("rasterio", reason="georeferenced rasters need the geo extra (pip install 'unip[geo]')")
pytest.importorskip("shapely", reason="the geo extra (shapely) is not installed")
pytest.importorskip("pyogrio", reason="the geo extra (pyogrio) is not installed")

from helpers.segmenters import PALETTE, tiny_segmenter  # noqa: E402
from rasterio.transform import Affine, from_origin  # noqa: E402

from unip_hub.data.frame import Calibration, Frame  # noqa: E402
from unip_hub.geo import GeoError, GeoSettings, is_georeferenced, segment_raster  # noqa: E402
from unip_hub.inference import InferenceOptions, Predictor  # noqa: E402

NODATA = -9999.0
ORIGIN = (500000.0, 5600000.0)  # UTM 33N, metres
PIXEL = 0.5
# (row0, row1, col0, col1, degC) hot rectangles; the first crosses tile seams (tile 128, stride 96) and the
# vectorising windows (64 px) in both directions
HOT = [(40, 110, 60, 230, 70.0), (200, 230, 300, 330, 95.0)]


def _raster(path, h=260, w=360, crs="EPSG:32633", transform=None, nodata=NODATA, count=1, dtype="float32",
            data=None):
    rng = np.random.default_rng(0)
    if data is None:
        data = (20.0 + rng.normal(0, 0.5, (h, w))).astype(np.float32)
        for r0, r1, c0, c1, t in HOT:
            data[r0:r1, c0:c1] = t
        data[HOT[0][0] + 5, HOT[0][2] + 7] = HOT[0][4] + 5.0  # one hotter pixel: max differs from mean
        data[:, :20] = nodata  # a nodata strip
        data[130:, 90:230] = nodata  # a nodata block holding whole tiles
    transform = transform if transform is not None else from_origin(*ORIGIN, PIXEL, PIXEL)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[-1], height=data.shape[-2], count=count,
                       dtype=dtype, crs=crs, transform=transform, nodata=nodata, tiled=True, blockxsize=64,
                       blockysize=64, compress="deflate") as ds:
        ds.write(data if data.ndim == 3 else np.repeat(data[None], count, 0))
    return data


@pytest.fixture(scope="module")
def seg():
    return tiny_segmenter(seed=3, palette=PALETTE)


SETTINGS = dict(tile_size=128, overlap=32, batch_tiles=3, vector_chunk=64, hot_above=50.0, preview_side=256)


def _hot_rows(result):
    return sorted((r for r in result.polygons if r["layer"] == "hotspots"), key=lambda r: -r["area_px"])


def test_hotspots_at_known_map_coordinates_with_temperatures(tmp_path, seg):
    import shapely
    from pyogrio import read_info
    from pyogrio.raw import read
    from pyproj import Transformer

    _raster(tmp_path / "ortho.tif")
    result = segment_raster(seg, tmp_path / "ortho.tif", tmp_path / "out", GeoSettings(**SETTINGS))
    spots = _hot_rows(result)
    assert len(spots) == len(HOT)  # the seam-crossing rectangle is ONE polygon
    for spot, (r0, r1, c0, c1, t) in zip(spots, HOT):
        x0, y0 = ORIGIN[0] + c0 * PIXEL, ORIGIN[1] - r1 * PIXEL
        x1, y1 = ORIGIN[0] + c1 * PIXEL, ORIGIN[1] - r0 * PIXEL
        assert spot["geometry"].equals(shapely.box(x0, y0, x1, y1))
        assert spot["area_m2"] == pytest.approx((r1 - r0) * (c1 - c0) * PIXEL ** 2)
        assert spot["hot"] and spot["t_min"] == pytest.approx(t)
    assert spots[0]["t_max"] == pytest.approx(HOT[0][4] + 5.0)
    assert spots[0]["t_mean"] == pytest.approx(HOT[0][4] + 5.0 / spots[0]["area_px"], rel=1e-6)
    assert spots[1]["t_max"] == spots[1]["t_mean"] == spots[1]["t_p95"] == pytest.approx(HOT[1][4])
    bounds = shapely.box(ORIGIN[0], ORIGIN[1] - 260 * PIXEL, ORIGIN[0] + 360 * PIXEL, ORIGIN[1])
    for row in result.polygons:
        assert row["geometry"].is_valid and bounds.covers(row["geometry"])
    assert read_info(result.paths["gpkg"], layer="hotspots")["features"] == 2
    assert read_info(result.paths["gpkg"], layer="classes")["features"] == sum(
        r["layer"] == "classes" for r in result.polygons)
    meta, _, wkb, fields = read(result.paths["hotspots_geojson"])  # WGS84 lon/lat
    assert "4326" in meta["crs"]
    lonlat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    lon, lat = lonlat.transform(ORIGIN[0] + HOT[0][2] * PIXEL, ORIGIN[1] - HOT[0][0] * PIXEL)
    big = shapely.from_wkb(wkb[int(np.argmax(fields[meta["fields"].tolist().index("area_px")]))])
    assert big.bounds[0] == pytest.approx(lon, abs=1e-6) and big.bounds[3] == pytest.approx(lat, abs=1e-6)
    assert (tmp_path / "out" / "ortho_preview.png").is_file()


def test_mask_is_georeferenced_cog_equal_to_whole_raster_slide(tmp_path, seg):
    data = _raster(tmp_path / "ortho.tif")
    result = segment_raster(seg, tmp_path / "ortho.tif", tmp_path / "out", GeoSettings(**SETTINGS))
    with rasterio.open(tmp_path / "ortho.tif") as src, rasterio.open(result.paths["mask"]) as mask_ds:
        assert mask_ds.crs == src.crs and mask_ds.transform == src.transform
        assert mask_ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and mask_ds.nodata == 255
        mask = mask_ds.read(1)
    valid = data != NODATA
    np.testing.assert_array_equal(mask == 255, ~valid)  # nodata stays nodata, never a class
    predictor = Predictor(seg)
    values = np.where(valid, data, np.nan).astype(np.float32)
    bounds = predictor.scaling.bounds(Frame(values[valid][None], values[valid][None], "x", "celsius"))
    gray = predictor.to_gray(predictor.read_frame(values), bounds)  # the whole raster scaled as one image
    reference = predictor.predict_torch(predictor.to_tensor(gray), InferenceOptions(
        mode="slide", crop_size=128, stride=96))[0].numpy()
    np.testing.assert_array_equal(mask[valid], reference[valid])  # streamed tiles == slide over the whole raster
    assert result.run.skipped >= 1 and result.run.tiles + result.run.skipped == 12


def test_reader_thread_is_an_option_with_the_same_mask(tmp_path, seg):
    """Tiles read in a thread (the default on GPUs) or inline (the default on the CPU): the same mask, byte for
    byte."""
    _raster(tmp_path / "ortho.tif")
    masks = []
    for prefetch in (True, False):
        out = tmp_path / f"out_{prefetch}"
        result = segment_raster(seg, tmp_path / "ortho.tif", out, GeoSettings(**SETTINGS, prefetch=prefetch))
        with rasterio.open(result.paths["mask"]) as ds:
            masks.append(ds.read(1))
    assert np.array_equal(*masks)
    cpu = Predictor(seg)
    assert GeoSettings().reads_ahead(cpu) is False and GeoSettings(prefetch=True).reads_ahead(cpu) is True


def test_percentile_bounds_are_raster_wide(tmp_path, seg):
    from unip_hub.geo.raster import inspect_raster
    from unip_hub.geo.scaling import raster_reading
    from unip_hub.geo.tiled import Tiling, iter_tile_batches, tile_rows

    data = _raster(tmp_path / "ortho.tif")
    predictor = Predictor(seg, scaling="percentile 1/99")
    valid = data != NODATA
    whole = predictor.to_gray(Frame(np.where(valid, data, np.nan), None, "x", "celsius"),
                              predictor.scaling.bounds(Frame(data[valid][None], None, "x", "celsius")))
    with rasterio.open(tmp_path / "ortho.tif") as ds:
        info = inspect_raster(ds)
        reading = raster_reading(ds, info, predictor.scaling, predictor.calibration)
        skipped: list = []
        batches = list(iter_tile_batches(ds, info, reading, predictor, tile_rows(260, 360, Tiling(128, 32)), 2,
                                         skipped))
    for batch in batches:
        for (y1, y2, x1, x2), tensor in zip(batch.boxes, batch.tensor if batch.tensor is not None else []):
            expected = predictor.to_tensor(np.where(valid[y1:y2, x1:x2], whole[y1:y2, x1:x2], 0))[0]
            assert torch.equal(tensor, expected)  # each tile: the whole raster's gray levels, not its own
    assert len(skipped) >= 1


def test_geographic_crs_gives_geodesic_areas(tmp_path, seg):
    from pyproj import Geod

    step = 5e-6  # degrees (~0.5 m)
    transform = from_origin(15.0, 50.0, step, step)
    _raster(tmp_path / "deg.tif", crs="EPSG:4326", transform=transform)
    result = segment_raster(seg, tmp_path / "deg.tif", tmp_path / "out", GeoSettings(**SETTINGS))
    spot = _hot_rows(result)[0]
    r0, r1, c0, c1, _ = HOT[0]
    lons, lats = [15.0 + c0 * step, 15.0 + c1 * step], [50.0 - r1 * step, 50.0 - r0 * step]
    expected, _ = Geod(ellps="WGS84").polygon_area_perimeter(
        [lons[0], lons[1], lons[1], lons[0]], [lats[0], lats[0], lats[1], lats[1]])
    assert spot["area_m2"] == pytest.approx(abs(expected), rel=1e-6)
    assert 0.19 < spot["area_m2"] / ((r1 - r0) * (c1 - c0)) < 0.21  # ~0.36 m x 0.56 m pixels at 50 N
    assert spot["geometry"].bounds == pytest.approx((lons[0], lats[0], lons[1], lats[1]))


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_no_crs_gives_pixel_coordinates_and_no_geojson(tmp_path, seg):
    _raster(tmp_path / "plain.tif", crs=None, transform=Affine.identity())
    with pytest.warns(UserWarning, match="no CRS"):
        result = segment_raster(seg, tmp_path / "plain.tif", tmp_path / "out", GeoSettings(**SETTINGS))
    spot = _hot_rows(result)[0]
    r0, r1, c0, c1, _ = HOT[0]
    assert spot["geometry"].bounds == (c0, r0, c1, r1) and np.isnan(spot["area_m2"])
    assert "classes_geojson" not in result.paths and "hotspots_geojson" not in result.paths
    assert not list((tmp_path / "out").glob("*.geojson")) and (tmp_path / "out" / "plain_polygons.gpkg").is_file()


def test_raster_smaller_than_one_tile(tmp_path, seg):
    rng = np.random.default_rng(1)
    data = (20 + rng.normal(0, 1, (40, 50))).astype(np.float32)
    data[10:20, 5:15] = 80.0
    _raster(tmp_path / "small.tif", data=data)
    result = segment_raster(seg, tmp_path / "small.tif", tmp_path / "out", GeoSettings(**SETTINGS))
    predictor = Predictor(seg)
    expected = predictor.predict(data).numpy()  # one window: the whole image
    with rasterio.open(result.paths["mask"]) as m:
        np.testing.assert_array_equal(m.read(1), expected)
    assert result.run.tiles == 1 and _hot_rows(result)[0]["area_px"] == 100


def test_counts_with_calibration(tmp_path, seg):
    counts = np.full((130, 140), 29315, np.uint16)  # 20 degC at 0.01 K per count
    counts[30:60, 40:90] = 35315  # 80 degC
    counts[:, :10] = 0
    _raster(tmp_path / "counts.tif", data=counts, dtype="uint16", nodata=0)
    predictor = Predictor(seg, calibration=Calibration(counts_to_celsius=(0.01, -273.15)))
    result = segment_raster(predictor, tmp_path / "counts.tif", tmp_path / "out", GeoSettings(**SETTINGS))
    spot = _hot_rows(result)[0]
    assert spot["area_px"] == 1500 and spot["t_max"] == pytest.approx(80.0, abs=1e-3)


@pytest.mark.parametrize("case", ["rotated", "bands", "band-out-of-range", "garbage", "truncated"])
def test_bad_input_is_one_line_error_and_leaves_nothing(tmp_path, seg, case):
    path = tmp_path / f"{case}.tif"
    if case == "rotated":
        _raster(path, transform=from_origin(*ORIGIN, PIXEL, PIXEL) @ Affine.rotation(10))
    elif case in ("bands", "band-out-of-range"):
        _raster(path, count=3)
    elif case == "garbage":
        path.write_bytes(b"II*\x00" + b"\x17" * 300)
    else:
        _raster(path, h=600, w=600)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    settings = GeoSettings(**{**SETTINGS, "band": 4 if case == "band-out-of-range" else None})
    out = tmp_path / "out"
    with pytest.raises(GeoError) as error:
        segment_raster(seg, path, out, settings)
    message = str(error.value)
    assert path.name in message and "\n" not in message
    assert not out.exists() or not list(out.iterdir())  # nothing half-written, no temporaries
    if case == "bands":
        assert "--band" in message
        result = segment_raster(seg, path, out, GeoSettings(**{**SETTINGS, "band": 3}))
        assert len(_hot_rows(result)) == 2


def test_interrupt_leaves_nothing_and_rerun_starts_clean(tmp_path, seg, monkeypatch):
    _raster(tmp_path / "ortho.tif")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".ortho.deadbeef.unip-geo-tmp.tif").write_bytes(b"left by a killed run")
    predictor = Predictor(seg)
    calls = []

    def interrupted(x, options=None):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return Predictor.logits_torch(predictor, x, options)

    monkeypatch.setattr(predictor, "logits_torch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segment_raster(predictor, tmp_path / "ortho.tif", out, GeoSettings(**SETTINGS))
    assert not list(out.iterdir())  # nothing of this run, and the killed run's leftover removed at its start
    (out / "ortho_hotspots.geojson").write_text("stale output of an earlier run")
    result = segment_raster(seg, tmp_path / "ortho.tif", out, GeoSettings(**{**SETTINGS, "hot_above": None}))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["ortho_mask.tif", "ortho_polygons.gpkg", "ortho_classes.geojson", "ortho_preview.png"])
    assert set(result.paths) == {"mask", "gpkg", "classes_geojson", "preview"}


def test_raster_files_give_one_record_each(tmp_path, seg):
    from unip_hub.geo import segment_raster_files

    rng = np.random.default_rng(2)
    data = (20 + rng.normal(0, 1, (60, 70))).astype(np.float32)
    data[5:15, 5:25] = 90.0
    _raster(tmp_path / "good.tif", data=data)
    (tmp_path / "bad.tif").write_bytes(b"II*\x00 truncated")
    good, bad = segment_raster_files(seg, [tmp_path / "good.tif", tmp_path / "bad.tif"], tmp_path / "out",
                                     GeoSettings(**SETTINGS))
    assert good["size"] == [60, 70] and good["hotspots"] == 1 and good["tiles"] == 1
    assert good["mask"] == str(tmp_path / "out" / "good_mask.tif")
    assert set(bad) == {"input", "error"} and "bad.tif" in bad["error"]
    assert not list((tmp_path / "out").glob("bad*"))


def test_zone_histogram_and_merge_match_numpy(monkeypatch):
    from unip_hub.geo import zonal

    rng = np.random.default_rng(5)
    values = rng.normal(40.0, 8.0, 5000).astype(np.float32)
    exact = zonal.Zone()
    exact.add(values)
    assert exact.result()["t_p95"] == pytest.approx(np.percentile(values, 95))
    monkeypatch.setattr(zonal, "EXACT_PIXELS", 1000)  # pieces turn into 0.01 degC histograms
    pieces = [zonal.Zone() for _ in range(4)]
    for piece, part in zip(pieces, np.array_split(values, 4)):
        piece.add(part[:700])
        piece.add(part[700:])
    whole = zonal.Zone()
    for piece in pieces:
        whole.merge(piece)
    got = whole.result()
    assert whole.bins is not None and got["t_p95"] == pytest.approx(np.percentile(values, 95), abs=0.011)
    assert (got["t_min"], got["t_max"]) == (values.min(), values.max())
    assert got["t_mean"] == pytest.approx(values.mean(dtype=np.float64))


def test_is_georeferenced(tmp_path):
    from PIL import Image

    _raster(tmp_path / "geo.tif")
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(tmp_path / "plain.tif")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "plain.png")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    assert is_georeferenced(tmp_path / "geo.tif")
    assert not any(is_georeferenced(tmp_path / n) for n in ("plain.tif", "plain.png", "broken.tif", "missing.tif"))


def test_geo_cli_arguments_make_settings():
    import argparse

    from unip_hub.geo import add_geo_arguments, geo_settings

    parser = argparse.ArgumentParser()
    parser.add_argument("--hot-above", type=float)
    add_geo_arguments(parser)
    settings = geo_settings(parser.parse_args(["--band", "2", "--tile-size", "256", "--overlap", "64",
                                               "--min-area-m2", "1.5", "--hot-above", "60", "--simplify", "0.5"]))
    assert (settings.band, settings.tile_size, settings.overlap, settings.min_area_m2, settings.hot_above,
            settings.simplify) == (2, 256, 64, 1.5, 60.0, 0.5)
    with pytest.raises(ValueError, match="overlap"):
        geo_settings(parser.parse_args(["--tile-size", "64", "--overlap", "64"]))


def test_unip_segment_routes_geotiffs(tmp_path, seg):
    """``unip segment`` sends a georeferenced TIFF to the tiled raster path (never reads it whole)."""
    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
    from unip_hub.cli import main

    _raster(tmp_path / "ortho.tif")
    model = save_segmenter_checkpoint(seg, tmp_path / "seg.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["segment", str(tmp_path / "ortho.tif"), "--model", str(model), "--out", str(tmp_path / "out"),
                   "--tile-size", "128", "--overlap", "32", "--hot-above", "50", "--quiet"])
    assert rc == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"ortho_mask.tif", "ortho_polygons.gpkg",
                                                               "ortho_hotspots.geojson", "ortho_preview.png"}


def test_unip_segment_finds_geotiffs_inside_folders(tmp_path, seg, capsys):
    """A folder with an orthomosaic and a plain frame: the GeoTIFF goes to the tiled path, the PNG to the image
    path under its usual name."""
    import json
    from pathlib import Path

    from PIL import Image

    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
    from unip_hub.cli import main

    (tmp_path / "flight").mkdir()
    _raster(tmp_path / "flight" / "ortho.tif")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56), dtype=np.uint8)).save(
        tmp_path / "flight" / "frame.png")
    model = save_segmenter_checkpoint(seg, tmp_path / "seg.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["segment", str(tmp_path / "flight"), "--model", str(model), "--out", str(tmp_path / "out"),
                   "--tile-size", "128", "--overlap", "32", "--mode", "whole", "--quiet", "--json"])
    assert rc == 0
    records = {Path(r["input"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert set(records) == {"ortho.tif", "frame.png"}
    assert records["ortho.tif"]["tiles"] > 0 and (tmp_path / "out" / "ortho_mask.tif").is_file()
    masks = tmp_path / "out" / "masks"
    assert (masks / "frame.png").is_file() and not (masks / "ortho.png").exists()  # never read as a plain image


def test_geo_benchmark_child_and_summary(tmp_path, monkeypatch):
    import json

    from unip_hub.benchmark import geo as bench
    from unip_hub.benchmark.config import BenchConfig

    raster = bench.write_ortho(tmp_path / "ortho.tif", 256)
    bench._child(str(raster), str(tmp_path / "f.json"), quick=True)  # in this process (the suite runs it in its own)
    f = json.loads((tmp_path / "f.json").read_text())
    assert f["peak_rss_mb"] > 0 and f["tiles"] > 0 and f["skipped"] == 0 and f["hotspots"] > 0
    assert 0 < f["model_only_s"] <= f["end_to_end_s"]
    monkeypatch.setattr(bench, "_measure", lambda size, quick, folder: {**f, "end_to_end_s": size / 100.0,
                                                                        "peak_rss_mb": 1000.0 + size / 64})
    results = bench.geo_results(BenchConfig(groups=("geo",), quick=True), progress=False)
    assert [r["name"] for r in results] == [f"geo/unip_vit_tiny@{s}x{s}" for s in bench.QUICK_SIZES] + ["geo/summary"]
    assert results[0]["ratio"] == pytest.approx(f["model_only_s"] / 2.56)
    assert set(results[0]["variants"]) == {"end-to-end", "model-only"}
    assert results[-1]["checks"]["rss_spread"] == pytest.approx((1006.0 / 1004.0) - 1)


def test_percentile95_is_numpys_bit_for_bit():
    from unip_hub.geo.zonal import percentile95

    rng = np.random.default_rng(11)
    for n in [1, 2, 3, 19, 20, 21, 100, 997, 5000]:
        for dtype in (np.float32, np.float64):
            values = (rng.normal(40.0, 8.0, n) * rng.choice([0.001, 1.0, 100.0])).astype(dtype)
            assert percentile95(values.copy()) == float(np.percentile(values, 95))
            rounded = np.round(values, 1)  # ties and repeated values
            assert percentile95(rounded.copy()) == float(np.percentile(rounded, 95))


def _blobs(rng, h, w, values):
    """(h, w) uint8 blobs of ``values`` (0: background) with holes and pinches, from smoothed noise."""
    noise = rng.random((h // 4 + 1, w // 4 + 1))
    big = np.kron(noise, np.ones((4, 4)))[:h, :w] + rng.random((h, w)) * 0.35
    return np.digitize(big, np.linspace(0.0, 1.35, values + 1)[1:-1]).astype(np.uint8)  # 0..values-1


@pytest.mark.parametrize("rows", [1, 7, 32, 1000])
def test_vectorizer_bands_give_the_regions_of_one_trace(rows):
    """Regions fed in bands of any height: the polygons of one trace of the whole mask (vertex for vertex, no
    vertex left where bands were cut), the same temperatures, in the same order."""
    import shapely
    from rasterio.features import rasterize, shapes

    from unip_hub.geo.vectors import Chunk, Vectorizer

    rng = np.random.default_rng(rows)
    h, w = 90, 70
    labels = _blobs(rng, h, w, 4)
    labels[40:50, :] = 2  # one region crossing every band
    keep = labels > 0
    celsius = rng.normal(30.0, 5.0, (h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.05
    vectorizer = Vectorizer(h, w, 4)
    for y in range(0, h, rows):
        band = slice(y, min(y + rows, h))
        vectorizer.add(Chunk(labels[band], keep[band], celsius[band], valid[band], labels[band]))
    got = vectorizer.close()
    traced = [(int(v), shapely.geometry.shape(g)) for g, v in shapes(labels, mask=keep, connectivity=4)]
    assert len(got) == len(traced)
    by_shape = {shapely.normalize(p).wkb: (v, p) for v, p in traced}
    for value, polygon, stat in got:
        ref_value, ref = by_shape[shapely.normalize(polygon).wkb]  # the same outline ...
        assert value == ref_value and shapely.get_num_coordinates(polygon) == shapely.get_num_coordinates(ref)
        inside = rasterize([(ref, 1)], out_shape=(h, w), dtype="uint8").astype(bool)  # its pixels
        data = celsius[inside & valid]
        assert stat["majority_class"] == value
        if data.size == 0:
            assert np.isnan(stat["t_min"]) and np.isnan(stat["t_p95"])
            continue
        assert (stat["t_min"], stat["t_max"]) == (data.min(), data.max())
        assert stat["t_p95"] == float(np.percentile(data, 95))
        assert stat["t_mean"] == pytest.approx(data.mean(dtype=np.float64), rel=1e-12)
    tops = [(p.bounds[1], min(x for x, y in p.exterior.coords if y == p.bounds[1])) for _, p, _ in got]
    assert tops == sorted(tops)  # by top-left pixel, whatever the bands


def test_full_width_bands_give_the_regions_of_one_trace():
    import shapely

    from unip_hub.geo.vectors import Chunk, Vectorizer, band_rows

    rng = np.random.default_rng(8)
    labels = _blobs(rng, 50, 40, 3)
    rows = band_rows(40, 20)  # bands of 20 * 20 // 40 = 10 rows, as segment_raster reads them
    assert rows == 10
    bands = Vectorizer(50, 40)
    for y in range(0, 50, rows):
        bands.add(Chunk(labels[y:y + rows], labels[y:y + rows] > 0))
    got = bands.close()
    whole = Vectorizer(50, 40)
    whole.add(Chunk(labels, labels > 0))

    def outlines(regions):  # merged pieces may start their rings elsewhere: the same vertices, normalised
        return [(v, shapely.normalize(p).wkb, shapely.get_num_coordinates(p)) for v, p, _ in regions]

    assert outlines(got) == outlines(whole.close())
    assert all(isinstance(p, shapely.Polygon) for _, p, _ in got)


def test_geojson_layers_are_rfc7946(tmp_path):
    """Our FeatureCollection (shapely's GeoJSON writer): valid JSON, WGS84, exteriors counterclockwise and holes
    clockwise, NaN as null, the same features GDAL reads back; a polygon across the antimeridian goes to GDAL."""
    import json

    import shapely
    from pyogrio.raw import read
    from rasterio.crs import CRS

    from unip_hub.geo.layers import _write_feature_collection, write_layers
    from unip_hub.geo.raster import RasterInfo

    info = RasterInfo("x.tif", 10, 10, 1, "float32", None, CRS.from_epsg(4326), Affine.identity(), Affine.identity(),
                      True, None)
    holed = shapely.Polygon([(10, 50), (10, 51), (11, 51), (11, 50)], [[(10.2, 50.2), (10.6, 50.2), (10.6, 50.6)]])
    rows = [{"n": 1, "t": 3.5, "name": "a", "hot": True, "geometry": holed},
            {"n": 2, "t": float("nan"), "name": "b", "hot": False,
             "geometry": shapely.MultiPolygon([shapely.box(12, 50, 13, 51), shapely.box(14, 50, 15, 51)])}]
    fields = {"n": int, "t": float, "name": str, "hot": bool}
    write_layers({"x": rows}, info, None, {"x": tmp_path / "x.geojson"}, fields)
    doc = json.loads((tmp_path / "x.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    first, second = doc["features"]
    assert first["properties"] == {"n": 1, "t": 3.5, "name": "a", "hot": True}
    assert second["properties"]["t"] is None and second["geometry"]["type"] == "MultiPolygon"
    assert first["geometry"]["type"] == "MultiPolygon"  # a layer holding MultiPolygons is all MultiPolygons
    shell, hole = (shapely.LinearRing(r) for r in first["geometry"]["coordinates"][0])
    assert shell.is_ccw and not hole.is_ccw
    meta, _, wkb, columns = read(tmp_path / "x.geojson")
    assert "4326" in meta["crs"] and list(columns[0]) == [1, 2]
    assert shapely.from_wkb(wkb[0]).equals(shapely.MultiPolygon([holed]))
    across = shapely.Polygon([(179.5, 0), (-179.5, 0), (-179.5, 1), (179.5, 1)])  # 1 degree wide across 180
    assert not _write_feature_collection(tmp_path / "a.geojson", "x", [across], [np.array([1])], ["n"])
    write_layers({"x": [{**rows[0], "geometry": across}]}, info, None, {"x": tmp_path / "a.geojson"}, fields)
    meta, _, wkb, _ = read(tmp_path / "a.geojson")  # written by GDAL instead
    assert "4326" in meta["crs"] and len(wkb) == 1
