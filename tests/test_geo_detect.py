"""Detectors over georeferenced rasters (unip_hub.geo.detect): streaming tiles, boxes in map coordinates, one per
object across tile overlaps, temperatures under each box, GeoPackage / GeoJSON / CSV / preview, ``unip detect``.

The raster is built here (float degC, UTM, 0.5 m pixels) with hot objects placed against the tiling (tile 128,
overlap 48, stride 80): inside an overlap (seen whole twice), across a seam (seen whole once, cut once), wider than
any tile (only cut views), at the raster border. The detector's forward is replaced through the predictor's
``runtime`` door by a blob finder (hot connected regions of the tile's gray -> boxes, and masks), so where the
objects must come back is known exactly; a real tiny detector runs the same path in the CLI test.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

rasterio = pytest.importorskip("rasterio", reason="georeferenced rasters need the geo extra (pip install 'unip[geo]')")
shapely = pytest.importorskip("shapely", reason="the geo extra (shapely) is not installed")
pytest.importorskip("pyogrio", reason="the geo extra (pyogrio) is not installed")
pytest.importorskip("torchvision")

from rasterio.transform import from_origin  # noqa: E402

from unip_hub.detection.predict import DetectionPredictor  # noqa: E402
from unip_hub.geo import GeoError, GeoSettings, detect_raster  # noqa: E402
from unip_hub.geo.tile_boxes import TileBoxes, box_margins, merge_tiles  # noqa: E402

ORIGIN, PIXEL, NODATA = (500000.0, 5600000.0), 0.5, -9999.0
H, W = 300, 420
# name: (row0, row1, col0, col1, degC); tiles: columns [0,128] [80,208] [160,288] [240,368] [292,420],
# rows [0,128] [80,208] [160,288] [172,300]
OBJECTS = {"overlap": (20, 32, 90, 110, 70.0),  # inside the overlap of two tiles: whole in both
           "seam": (40, 60, 120, 140, 80.0),  # across x=128: cut in the first tile, whole in the second
           "wide": (210, 240, 170, 330, 65.0),  # 160 px wide: no tile shows it whole
           "border": (250, 270, 400, 420, 75.0)}  # ends at the raster's right border: whole
NOTCH = (40, 50, 120, 126)  # the "seam" object is an L: this corner is background
HOTTEST = (55, 135, 90.0)  # one hotter pixel in the "seam" object
SETTINGS = dict(tile_size=128, overlap=48, batch_tiles=3, hot_above=60.0, min_area_m2=70.0, preview_side=256)
NAMES = ["person", "vehicle"]


def write_raster(path, crs="EPSG:32633"):
    rng = np.random.default_rng(0)
    data = (20.0 + rng.normal(0, 0.5, (H, W))).astype(np.float32)
    for r0, r1, c0, c1, t in OBJECTS.values():
        data[r0:r1, c0:c1] = t
    n0, n1, m0, m1 = NOTCH
    data[n0:n1, m0:m1] = 20.0
    data[HOTTEST[0], HOTTEST[1]] = HOTTEST[2]
    data[:, :12] = NODATA
    data[150:, :140] = NODATA  # holds two whole tiles: skipped
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=1, dtype="float32", crs=crs,
                       transform=from_origin(*ORIGIN, PIXEL, PIXEL), nodata=NODATA, tiled=True, blockxsize=64,
                       blockysize=64) as ds:
        ds.write(data, 1)
    return path


def blob_finder(masks: bool = False):
    """A detector forward for the ``runtime`` door: every 4-connected region of gray above 127 (50 degC in the
    window 0..100 degC scaling) is one detection, ``vehicle`` when larger than 1000 pixels."""
    from scipy import ndimage

    def forward(images):
        out = []
        for im in images:
            regions, n = ndimage.label(im[0].numpy() > 0.5)  # (h, w)
            boxes, labels, found = [], [], []
            for k, (ys, xs) in enumerate(ndimage.find_objects(regions), 1):
                region = regions == k
                boxes.append([xs.start, ys.start, xs.stop, ys.stop])
                labels.append(int(region.sum() > 1000))
                found.append(region)
            res = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                   "scores": torch.full((n,), 0.9), "labels": torch.tensor(labels, dtype=torch.int64)}
            if masks:
                res["masks"] = torch.from_numpy(np.stack(found) if found else np.zeros((0, *regions.shape), bool))[
                    :, None].float()  # (n, 1, h, w) probabilities
            out.append(res)
        return out

    return forward


@pytest.fixture(scope="module")
def det():
    from unip_hub.detection import create_detector

    torch.manual_seed(0)
    return create_detector("unip_vit_tiny", num_classes=2, class_names=NAMES, min_size=128, max_size=128, depth=2,
                           embed_dim=64, num_heads=2, out_channels=32, input_scaling="window 0..100 degC",
                           detector_kwargs={"box_score_thresh": 0.0, "box_detections_per_img": 10,
                                            "rpn_pre_nms_top_n_test": 50, "rpn_post_nms_top_n_test": 20}).eval()


def map_box(r0, r1, c0, c1):
    return shapely.box(ORIGIN[0] + c0 * PIXEL, ORIGIN[1] - r1 * PIXEL, ORIGIN[0] + c1 * PIXEL, ORIGIN[1] - r0 * PIXEL)


def by_name(result):
    """The detections keyed by the object whose box they are (every detection must be one of them)."""
    found = {}
    for row in result.detections:
        box = (row["y0"], row["y1"], row["x0"], row["x1"])
        name = next(k for k, (r0, r1, c0, c1, _) in OBJECTS.items() if box == (r0, r1, c0, c1))
        assert name not in found, f"{name} detected twice"
        found[name] = row
    return found


def test_objects_come_back_once_at_their_map_boxes_with_temperatures(tmp_path, det):
    from pyogrio import read_info
    from pyogrio.raw import read
    from pyproj import Transformer

    write_raster(tmp_path / "ortho.tif")
    predictor = DetectionPredictor(det, runtime=blob_finder())
    result = detect_raster(predictor, tmp_path / "ortho.tif", tmp_path / "out", GeoSettings(**SETTINGS))
    found = by_name(result)
    assert set(found) == set(OBJECTS)  # each once: duplicates in overlaps and cut views merged
    assert result.run.skipped == 2 and result.run.tiles == 4 * 5 - 2
    assert found["overlap"]["views"] == 2 and found["seam"]["views"] == 2 and found["wide"]["views"] == 8
    for name, (r0, r1, c0, c1, t) in OBJECTS.items():
        row = found[name]
        assert row["geometry"].equals(map_box(r0, r1, c0, c1))
        assert row["area_m2"] == pytest.approx((r1 - r0) * (c1 - c0) * PIXEL ** 2)
        assert row["class_name"] == NAMES[row["class"]] == ("vehicle" if name == "wide" else "person")
        if name != "seam":
            assert row["t_min"] == row["t_mean"] == row["t_max"] == row["t_p95"] == t  # exact in float32
    assert found["seam"]["t_max"] == HOTTEST[2] and found["seam"]["t_min"] < 22.0  # box: the notch
    assert [found[k]["hot"] for k in OBJECTS] == [False, True, True, True]  # "overlap": 60 m^2 < min_area_m2
    assert (found["wide"]["centre_x"], found["wide"]["centre_y"]) == pytest.approx(
        (ORIGIN[0] + 250 * PIXEL, ORIGIN[1] - 225 * PIXEL))
    assert read_info(result.paths["gpkg"], layer="detections")["features"] == len(OBJECTS)
    meta, _, wkb, fields = read(result.paths["geojson"])
    assert "4326" in meta["crs"]
    names = meta["fields"].tolist()
    wide = shapely.from_wkb(wkb[list(fields[names.index("views")]).index(8)])
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(
        ORIGIN[0] + 170 * PIXEL, ORIGIN[1] - 210 * PIXEL)
    assert wide.bounds[0] == pytest.approx(lon, abs=1e-7) and wide.bounds[3] == pytest.approx(lat, abs=1e-7)
    with open(result.paths["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(OBJECTS) and {"centre_x", "centre_y", "t_max", "views"} <= set(table[0])
    picture = np.asarray(Image.open(result.paths["preview"]))
    assert picture.shape[2] == 3 and picture.shape[1] >= 256
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ortho_detections.csv", "ortho_detections.geojson", "ortho_detections.gpkg", "ortho_detections.png"]


def test_mask_rcnn_outlines_and_temperatures_inside_them(tmp_path, det):
    write_raster(tmp_path / "ortho.tif")
    predictor = DetectionPredictor(det, runtime=blob_finder(masks=True))
    with rasterio.open(tmp_path / "ortho.tif") as ds:  # an open dataset is read as it is, and left open
        result = detect_raster(predictor, ds, tmp_path / "out", GeoSettings(**SETTINGS), name="site")
        assert not ds.closed
    assert sorted(result.paths) == ["csv", "geojson", "gpkg", "preview"] and "site_" in result.paths["gpkg"]
    found = by_name(result)
    seam = found["seam"]
    r0, r1, c0, c1, t = OBJECTS["seam"]
    n0, n1, m0, m1 = NOTCH
    assert seam["geometry"].equals(map_box(r0, r1, c0, c1).difference(map_box(n0, n1, m0, m1)))
    pixels = (r1 - r0) * (c1 - c0) - (n1 - n0) * (m1 - m0)
    assert seam["area_m2"] == pytest.approx(pixels * PIXEL ** 2)
    assert seam["t_min"] == t and seam["t_max"] == HOTTEST[2]
    assert seam["t_mean"] == round(t + (HOTTEST[2] - t) / pixels, 3)  # box_temperatures' 3 decimals
    assert found["wide"]["geometry"].equals(map_box(*OBJECTS["wide"][:4]))  # cut outlines unioned
    assert found["wide"]["t_min"] == found["wide"]["t_max"] == OBJECTS["wide"][4]


def test_without_crs_boxes_are_in_pixels_and_no_geojson(tmp_path, det):
    path = tmp_path / "plain.tif"
    rng = np.random.default_rng(1)
    data = (20.0 + rng.normal(0, 0.5, (H, W))).astype(np.float32)
    data[100:130, 200:230] = 70.0  # 900 px: a person in every view
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=1, dtype="float32",
                       transform=rasterio.Affine(1, 0, 0, 0, 1, 0.5)) as ds:  # a geotransform, no CRS
        ds.write(data, 1)
    with pytest.warns(UserWarning, match="no CRS"):
        result = detect_raster(DetectionPredictor(det, runtime=blob_finder()), path, tmp_path / "out",
                               GeoSettings(**SETTINGS))
    (row,) = result.detections
    assert row["geometry"].equals(shapely.box(200, 100, 230, 130)) and np.isnan(row["area_m2"])
    assert "geojson" not in result.paths and set(result.paths) == {"gpkg", "csv", "preview"}


def test_bad_raster_is_one_line_and_leaves_nothing(tmp_path, det):
    path = write_raster(tmp_path / "ortho.tif")
    path.write_bytes(path.read_bytes()[:3000])  # truncated
    out = tmp_path / "out"
    with pytest.raises(GeoError) as error:
        detect_raster(DetectionPredictor(det, runtime=blob_finder()), path, out, GeoSettings(**SETTINGS))
    assert path.name in str(error.value) and "\n" not in str(error.value)
    assert not out.exists() or not list(out.iterdir())


def test_interrupt_leaves_nothing(tmp_path, det):
    write_raster(tmp_path / "ortho.tif")
    out = tmp_path / "out"
    calls, finder = [], blob_finder()

    def interrupted(images):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return finder(images)

    with pytest.raises(KeyboardInterrupt):
        detect_raster(DetectionPredictor(det, runtime=interrupted), tmp_path / "ortho.tif", out,
                      GeoSettings(**SETTINGS))
    assert not list(out.iterdir())


def test_merge_keeps_distinct_objects_apart():
    def tile_boxes(tile, boxes, labels, scores=None):
        b = np.array(boxes, np.float64)
        return TileBoxes(tile, b, np.array(scores or [0.9] * len(b)), np.array(labels),
                         box_margins(b, tile, 300, 420), [{} for _ in b])

    left, right = (0, 128, 0, 128), (0, 128, 80, 208)
    # two people side by side in the overlap, seen by both tiles; a car cut by the left tile's border
    a = tile_boxes(left, [[90, 10, 100, 30], [103, 10, 113, 30], [110, 60, 128, 80]], [0, 0, 1])
    b = tile_boxes(right, [[90, 10, 100, 30], [103, 10, 113, 30], [110, 60, 150, 80]], [0, 0, 1], [0.8, 0.95, 0.7])
    merged = merge_tiles([a, b], iou=0.5)
    assert [(m.box.tolist(), m.label, m.views) for m in merged] == [
        ([90, 10, 100, 30], 0, 2), ([103, 10, 113, 30], 0, 2), ([110, 60, 150, 80], 1, 2)]
    assert [m.score for m in merged] == [0.9, 0.95, 0.9]
    # the same boxes with different classes stay apart
    b.labels = np.array([1, 1, 0])
    assert len(merge_tiles([a, b], iou=0.5)) == 6
    # margins: a box at the raster's border has none on that side; the tile's inner borders count
    assert box_margins(np.array([[400.0, 0, 420, 10]]), (0, 128, 292, 420), 300, 420).tolist() == [108.0]
    assert box_margins(np.array([[0.0, 0, 20, 10]]), (0, 300, 0, 420), 300, 420).tolist() == [np.inf]


def test_unip_detect_routes_geotiffs(tmp_path, det, capsys):
    from unip_hub.cli import main
    from unip_hub.detection import save_detector

    save_detector(det, tmp_path / "det.pth")
    write_raster(tmp_path / "ortho.tif")
    assert main(["detect", str(tmp_path / "ortho.tif"), "--model", str(tmp_path / "det.pth"), "--out",
                 str(tmp_path / "out"), "--tile-size", "128", "--overlap", "48", "--hot-above", "60", "--quiet",
                 "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["tiles"] == 18 and record["skipped_tiles"] == 2 and record["size"] == [H, W]
    with open(record["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == record["detections"] > 0  # an untrained detector with threshold 0 finds boxes
    bounds = shapely.box(ORIGIN[0], ORIGIN[1] - H * PIXEL, ORIGIN[0] + W * PIXEL, ORIGIN[1])
    from pyogrio.raw import read

    _, _, wkb, _ = read(record["gpkg"])
    assert all(bounds.covers(shapely.from_wkb(g)) for g in wkb)
    assert record["hot"] == sum(r["hot"] == "True" for r in table)


def test_merge_takes_the_most_confident_whole_view():
    left, right = (0, 128, 0, 128), (0, 128, 80, 208)

    def views(left_box, left_score):
        return [TileBoxes(t, np.array([b], np.float64), np.array([sc]), np.array([0]),
                          box_margins(np.array([b], np.float64), t, 300, 420), [{"max": m}])
                for t, b, sc, m in ((left, left_box, left_score, 30.0), (right, [110.0, 40, 126, 70], 0.8, 31.0))]

    # seen whole by both tiles (5 px short of the left tile's border): the more confident view is kept
    (merged,) = merge_tiles(views([110.0, 40, 123, 70], 0.95), iou=0.5)
    assert merged.box.tolist() == [110, 40, 123, 70] and merged.figures == {"max": 30.0}
    assert merged.score == 0.95 and merged.views == 2
    # cut by the left tile's border: the whole view's box and temperatures, the cut view's higher score
    (merged,) = merge_tiles(views([110.0, 40, 128, 70], 0.95), iou=0.5)
    assert merged.box.tolist() == [110, 40, 126, 70] and merged.figures == {"max": 31.0}
    assert merged.score == 0.95 and merged.views == 2


def test_unip_detect_sends_geotiffs_in_folders_to_the_tiles(tmp_path, det, capsys):
    from unip_hub.cli import main
    from unip_hub.detection import save_detector

    save_detector(det, tmp_path / "det.pth")
    folder = tmp_path / "flight"
    folder.mkdir()
    write_raster(folder / "ortho.tif")
    np.save(folder / "frame.npy", np.full((48, 64), 30.0, np.float32))  # a plain degC frame beside it
    assert main(["detect", str(folder), "--model", str(tmp_path / "det.pth"), "--out", str(tmp_path / "out"),
                 "--tile-size", "128", "--overlap", "48", "--quiet", "--json"]) == 0
    records = {r["input"].rsplit("/", 1)[-1]: r for r in json.loads(capsys.readouterr().out)}
    assert set(records) == {"ortho.tif", "frame.npy"}
    assert records["ortho.tif"]["tiles"] == 18 and (tmp_path / "out" / "ortho_detections.gpkg").is_file()
    assert (tmp_path / "out" / "csv" / "frame.csv").is_file() and not (tmp_path / "out" / "csv" / "ortho.csv").exists()


def test_nothing_found_still_writes_empty_layers(tmp_path, det):
    from pyogrio import read_info

    path = tmp_path / "cold.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200, height=200, count=1, dtype="float32", crs="EPSG:32633",
                       transform=from_origin(*ORIGIN, PIXEL, PIXEL)) as ds:
        ds.write(np.full((200, 200), 20.0, np.float32), 1)
    result = detect_raster(DetectionPredictor(det, runtime=blob_finder()), path, tmp_path / "out",
                           GeoSettings(**SETTINGS))
    assert result.detections == [] and sorted(result.paths) == ["csv", "geojson", "gpkg", "preview"]
    assert read_info(result.paths["gpkg"], layer="detections")["features"] == 0
    with open(result.paths["csv"], newline="") as f:
        assert list(csv.DictReader(f)) == []
