"""Temperatures out: per-class and per-region statistics (against a hand computation), JSON/CSV tables, the
thermal overlay with colour bar and legend, and ``unip segment`` on radiometric inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers.segmenters import PALETTE, tiny_segmenter
from PIL import Image

from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
from unip_hub.cli import main
from unip_hub.inference.render import class_edges, palette_array, thermal_overlay
from unip_hub.inference.stats import temperature_stats, write_stats

pytest.importorskip("scipy")


def _scene():
    """Background at 20 degC, two class-1 blobs (one hot), one class-2 blob of 3 pixels."""
    celsius = np.full((20, 30), 20.0, np.float32)
    mask = np.zeros((20, 30), np.int64)
    mask[2:6, 3:9], celsius[2:6, 3:9] = 1, 40.0  # 24 px at 40
    mask[10:15, 20:28], celsius[10:15, 20:28] = 1, 80.0  # 40 px at 80
    celsius[12, 22] = 95.0
    mask[17, 1:4], celsius[17, 1:4] = 2, 30.0  # 3 px
    celsius[0, 0] = np.nan  # counted in the area, not in the temperatures
    return celsius, mask


def test_class_and_region_statistics_match_a_hand_computation():
    celsius, mask = _scene()
    stats = temperature_stats(celsius, mask, ["ground", "panel", "wire"], min_area=4, hot_above=70.0)
    by_class = {c["name"]: c for c in stats["classes"]}
    assert by_class["ground"]["area"] == 600 - 24 - 40 - 3 and by_class["ground"]["max"] == 20.0
    hot = celsius[mask == 1]
    assert by_class["panel"]["area"] == 64 and by_class["panel"]["max"] == 95.0
    assert by_class["panel"]["mean"] == pytest.approx(float(hot.mean()), abs=1e-3)
    assert by_class["panel"]["p95"] == pytest.approx(float(np.percentile(hot, 95)), abs=1e-3)
    regions = [r for r in stats["regions"] if r["name"] == "panel"]
    assert [r["area"] for r in regions] == [24, 40] and [r["hot"] for r in regions] == [False, True]
    assert regions[1]["bbox"] == [10, 20, 15, 28] and regions[1]["centroid"] == [12.0, 23.5]
    assert not any(r["name"] == "wire" for r in stats["regions"])  # 3 px < min_area
    assert stats["hotspots"] == 1 and stats["unit"] == "degC"
    with pytest.raises(ValueError, match="differ"):
        temperature_stats(celsius[:5], mask)


def test_stats_tables_and_thermal_overlay(tmp_path):
    celsius, mask = _scene()
    stats = temperature_stats(celsius, mask, ["ground", "panel", "wire"], hot_above=70.0)
    paths = write_stats(stats, tmp_path / "stats" / "frame")
    assert json.loads((tmp_path / "stats" / "frame.json").read_text()) == json.loads(json.dumps(stats))
    rows = list(csv.DictReader(open(paths["stats_csv"])))
    assert [r["level"] for r in rows].count("class") == 3 and rows[0]["name"] == "ground"
    assert any(r["level"] == "region" and r["hot"] == "True" for r in rows)
    palette = palette_array(3, PALETTE[:3])
    picture = thermal_overlay(celsius, mask, palette, ["ground", "panel", "wire"])
    assert picture.dtype == np.uint8 and picture.shape[1] > 30 and picture.shape[0] >= 20
    edges = class_edges(mask)
    np.testing.assert_array_equal(picture[:20, :30][edges], palette[mask[edges]])  # outlines in class colours
    panel = picture[:, 30:]
    assert (panel == 255).mean() > 0.5 and len(np.unique(panel.reshape(-1, 3), axis=0)) > 20  # bar + text


def test_segment_cli_writes_temperatures_for_radiometric_inputs(tmp_path, capsys):
    seg = tiny_segmenter(seed=2, palette=PALETTE)
    model = save_segmenter_checkpoint(seg, tmp_path / "seg.pth")
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    celsius = (25 + 10 * rng.random((40, 48))).astype(np.float32)
    Image.fromarray(celsius).save(src / "scene_c.tif")
    counts = np.round((celsius + 273.15) * 100).astype(np.uint16)
    Image.fromarray(counts).save(src / "boson.png")
    Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)).save(src / "agc.png")
    out = tmp_path / "out"
    rc = main(["segment", str(src), "--model", str(model), "--out", str(out), "--mode", "whole", "--quiet", "--json",
               "--counts-to-celsius", "0.01", "-273.15", "--hot-above", "30", "--min-area", "2"])
    records = {r["input"].rsplit("/", 1)[-1]: r for r in json.loads(capsys.readouterr().out)}
    assert rc == 0
    for name in ("scene_c", "boson"):
        assert {"thermal", "stats_json", "stats_csv"} <= set(records[f"{name}.{'tif' if name == 'scene_c' else 'png'}"])
        stats = json.loads((out / "stats" / f"{name}.json").read_text())
        assert stats["min_area"] == 2 and stats["hot_above"] == 30
        assert 25 <= min(c["min"] for c in stats["classes"]) and max(c["max"] for c in stats["classes"]) <= 35
        assert Image.open(out / "thermal" / f"{name}.png").size[1] >= 40
    a, b = (json.loads((out / "stats" / f"{n}.json").read_text()) for n in ("scene_c", "boson"))
    assert [c["area"] for c in a["classes"]] == [c["area"] for c in b["classes"]]  # same scene, same masks
    assert "thermal" not in records["agc.png"] and not (out / "stats" / "agc.json").exists()
    rc = main(["segment", str(src / "scene_c.tif"), "--model", str(model), "--out", str(tmp_path / "o2"), "--quiet",
               "--scaling", "8-bit"])
    assert rc == 1 and "8-bit" in capsys.readouterr().err and not (tmp_path / "o2").exists()


def test_statistics_of_a_fragmented_mask_match_a_region_by_region_computation():
    """Hundreds of small regions and NaNs: every figure equals numpy / scipy applied region by region."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    mask = rng.integers(0, 4, (40, 50))
    mask[5:30, 10:40] = 2  # one large region among the fragments
    celsius = (20 + 30 * rng.random((40, 50))).astype(np.float32)
    celsius[rng.random((40, 50)) < 0.05] = np.nan
    stats = temperature_stats(celsius, mask, min_area=2, hot_above=45.0)
    expected, eight = [], np.ones((3, 3), bool)
    for c in range(4):
        labels, count = ndimage.label(mask == c, structure=eight)
        for i in range(1, count + 1):
            inside = labels == i
            if inside.sum() >= 2:
                ys, xs = np.nonzero(inside)
                box = [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
                expected.append((c, int(inside.sum()), celsius[inside], box,
                                 [ys.mean(), xs.mean()]))
    assert len(stats["regions"]) == len(expected) > 100
    for region, (c, area, temps, bbox, centroid) in zip(stats["regions"], expected):
        assert (region["class"], region["area"], region["bbox"]) == (c, area, bbox)
        assert region["centroid"] == pytest.approx(centroid, abs=0.006)
        finite = temps[np.isfinite(temps)]
        if finite.size == 0:
            assert region["min"] is None and region["p95"] is None and not region["hot"]
            continue
        for key, value in (("min", finite.min()), ("max", finite.max()), ("mean", finite.mean()),
                           ("p95", np.percentile(finite, 95))):
            assert region[key] == pytest.approx(float(value), abs=1e-3), key
        assert region["hot"] == bool(finite.max() > 45.0)
    for row in stats["classes"]:
        temps = celsius[mask == row["class"]]
        assert row["area"] == temps.size
        assert row["p95"] == pytest.approx(float(np.nanpercentile(temps, 95)), abs=1e-3)
    assert stats["hotspots"] == sum(r["hot"] for r in stats["regions"])


def test_gray_overlay_table_equals_the_blend_formula():
    from unip_hub.inference.render import overlay

    rng = np.random.default_rng(4)
    palette = palette_array(7)
    gray, mask = rng.integers(0, 256, (33, 45)).astype(np.uint8), rng.integers(0, 7, (33, 45))
    for alpha in (0.0, 0.3, 0.5, 0.77, 1.0):
        expected = np.clip(np.rint((1.0 - alpha) * gray[..., None].astype(np.float32)
                                   + alpha * palette[mask].astype(np.float32)), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(overlay(gray, mask, palette, alpha), expected)
        np.testing.assert_array_equal(overlay(gray.astype(np.int16), mask, palette, alpha), expected)
    with pytest.raises(ValueError, match="palette only 7"):
        overlay(gray, mask + 1, palette)
