"""Radiometric input: temperatures from float TIFF/NPY (degC, K), calibrated counts and FLIR R-JPEGs; 8-bit data
in 16-bit containers; vendor formats refused with one-line errors; the input-scaling spec (parse, apply, stored
in checkpoints, default for older files); smoothed percentile bounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.samples import SAMPLES
from helpers.segmenters import tiny_segmenter
from PIL import Image

from unip_hub.data import read_thermal
from unip_hub.data.radiometric import Calibration, RadiometricError, flir_kind, read_radiometric
from unip_hub.data.scaling import DEFAULT_SCALING, InputScaling, RunningBounds, scaling_from_meta

RJPEG = SAMPLES / "rjpeg"
SCENE_C = 20.0 + 15.0 * np.linspace(0, 1, 30 * 40, dtype=np.float32).reshape(30, 40)  # 20..35 degC


def _jpeg_with(tmp_path: Path, name: str, segments: list[tuple[int, bytes]], exif: Image.Exif | None = None) -> Path:
    """A small JPEG with extra APPn segments spliced in after SOI (and optional EXIF)."""
    path = tmp_path / name
    image = Image.fromarray(np.full((16, 16, 3), 90, np.uint8))
    image.save(path, exif=exif) if exif is not None else image.save(path)
    data = path.read_bytes()
    extra = b"".join(bytes([0xFF, m]) + (len(p) + 2).to_bytes(2, "big") + p for m, p in segments)
    path.write_bytes(data[:2] + extra + data[2:])
    return path


# ---------------------------------------------------------------------------------------- temperatures in
def test_float_tiff_and_npy_in_celsius_and_kelvin(tmp_path):
    Image.fromarray(SCENE_C).save(tmp_path / "c.tif")
    np.save(tmp_path / "k.npy", SCENE_C + 273.15)
    c, k = read_radiometric(tmp_path / "c.tif"), read_radiometric(tmp_path / "k.npy")
    assert (c.kind, k.kind) == ("celsius", "kelvin")
    np.testing.assert_allclose(c.celsius, SCENE_C)
    np.testing.assert_allclose(k.celsius, SCENE_C, atol=1e-4)
    hot = read_radiometric(SCENE_C + 200, Calibration(unit="celsius"))  # a 220..235 degC scene, said so
    np.testing.assert_allclose(hot.celsius, SCENE_C + 200)
    assert read_radiometric(SCENE_C + 200).kind == "kelvin"  # what "auto" guesses for it


def test_counts_with_linear_calibration_and_8bit_in_16bit(tmp_path):
    counts = np.round((SCENE_C + 273.15) * 100).astype(np.uint16)  # Boson TLinear: 0.01 K per count
    Image.fromarray(counts).save(tmp_path / "boson.png")
    plain = read_radiometric(tmp_path / "boson.png")
    assert plain.kind == "counts" and plain.celsius is None
    frame = read_radiometric(tmp_path / "boson.png", Calibration(counts_to_celsius=(0.01, -273.15)))
    np.testing.assert_allclose(frame.celsius, SCENE_C, atol=0.006)
    gray = np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) % 256
    for stored in (gray, gray * 256):  # low byte, high byte
        Image.fromarray(stored.astype(np.uint16)).save(tmp_path / "wide.png")
        assert read_radiometric(tmp_path / "wide.png").kind == "8-bit"
        np.testing.assert_array_equal(read_thermal(tmp_path / "wide.png"), gray.astype(np.uint8))


def test_vendor_formats_refused_with_one_line_errors(tmp_path):
    seq = tmp_path / "flight.seq"
    seq.write_bytes(b"\x00" * 64)
    with pytest.raises(RadiometricError, match="iter_seq_frames") as info:
        read_radiometric(seq)
    assert str(seq) in str(info.value)
    exif = Image.Exif()
    exif[271], exif[272] = "DJI", "ZH20T"
    dji = _jpeg_with(tmp_path, "DJI_0001_R.JPG", [(0xE3, b"\x00" * 32)], exif)
    assert flir_kind(dji) == "dji"
    with pytest.raises(RadiometricError, match="Thermal SDK") as info:
        read_radiometric(dji)
    assert "DJI_0001_R.JPG" in str(info.value) and "\n" not in str(info.value)
    assert flir_kind(_jpeg_with(tmp_path, "plain.jpg", [])) is None


def test_flir_rjpeg_without_calibration_is_a_clear_error(tmp_path):
    pytest.importorskip("flyr")
    broken = _jpeg_with(tmp_path, "broken.jpg", [(0xE1, b"FLIR\x00\x01" + b"\x00" * 40)])
    assert flir_kind(broken) == "flir"
    with pytest.raises(RadiometricError, match=r"broken\.jpg: a FLIR R-JPEG") as info:
        read_radiometric(broken)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not RJPEG.is_dir(), reason="../shared/thermal-samples absent")
def test_real_flir_rjpegs():
    pytest.importorskip("flyr")
    for name, shape, (lo, hi) in (("ax8.jpg", (60, 80), (24.4, 25.5)), ("flir_example.jpg", (320, 240), (26.0, 62.3))):
        frame = read_radiometric(RJPEG / name)
        assert frame.kind == "flir-rjpeg" and frame.shape == shape
        assert frame.celsius.min() == pytest.approx(lo, abs=0.1) and frame.celsius.max() == pytest.approx(hi, abs=0.1)
        assert frame.params["emissivity"] == pytest.approx(0.95)
        lower = read_radiometric(RJPEG / name, Calibration(emissivity=0.5))
        assert lower.celsius.max() > frame.celsius.max()  # less emissive surface: hotter for the same radiance


# ------------------------------------------------------------------------------------------ scaling spec
def test_input_scaling_spec_parses_prints_and_applies():
    assert str(DEFAULT_SCALING) == "percentile 0.5/99.5"
    for text in ("percentile 0.5/99.5", "window 20..120 degC", "window -10.5..40 degC", "8-bit"):
        assert str(InputScaling.parse(text)) == text
    assert InputScaling.parse("Window 20 .. 120 °C") == InputScaling("window", 20, 120)
    assert InputScaling.parse("8-bit as is").kind == "8-bit"
    for bad in ("gamma 2", "window 30..20", "percentile 1/120"):
        with pytest.raises(ValueError):
            InputScaling.parse(bad)
    frame = read_radiometric(SCENE_C)
    window = InputScaling.parse("window 20..35 degC").to_gray(frame)
    np.testing.assert_array_equal(window, np.clip(np.rint((SCENE_C - 20) / 15 * 255), 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(DEFAULT_SCALING.to_gray(frame), read_thermal(SCENE_C))  # today's default
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(InputScaling.parse("8-bit").to_gray(read_radiometric(gray)), gray)
    with pytest.raises(RadiometricError, match="has none"):
        InputScaling.parse("window 20..35 degC").to_gray(read_radiometric(gray))
    with pytest.raises(RadiometricError, match="8-bit"):
        InputScaling.parse("8-bit").to_gray(frame)
    assert scaling_from_meta(None) == DEFAULT_SCALING and scaling_from_meta("8-bit").kind == "8-bit"


def test_running_bounds_keep_gray_levels_stable_on_a_drifting_sequence():
    rng = np.random.default_rng(0)
    base = rng.normal(25.0, 3.0, (24, 32)).astype(np.float32)
    hot_pixel = (5, 7)
    per_frame, smoothed = [], []
    running = RunningBounds(DEFAULT_SCALING, momentum=0.9)
    for t in range(40):
        scene = base + 0.05 * t  # slow global drift of the scene
        scene[0, :8] += 8.0 * (t % 2)  # a flickering hot edge that moves the per-frame 99.5th percentile
        frame = read_radiometric(scene)
        per_frame.append(int(DEFAULT_SCALING.to_gray(frame)[hot_pixel]))
        smoothed.append(int(running(frame)[hot_pixel]))
    jitter = lambda v: np.abs(np.diff(v[10:])).max()  # noqa: E731
    assert jitter(per_frame) >= 8  # without smoothing the same pixel jumps by many gray levels
    assert jitter(smoothed) <= 2  # with running bounds it stays within a couple
    assert RunningBounds(InputScaling.parse("window 20..35 degC"))(frame).dtype == np.uint8


def test_scaling_travels_in_checkpoints_and_older_files_get_the_default(tmp_path, capsys):
    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
    from unip_hub.hub.segmenters import load_segmenter
    from unip_hub.inference import Predictor

    seg = tiny_segmenter()
    assert seg.input_scaling == "percentile 0.5/99.5"
    seg.input_scaling = "window 20..35 degC"
    for suffix in (".pth", ".safetensors"):
        loaded = load_segmenter(save_segmenter_checkpoint(seg, tmp_path / f"w{suffix}"))
        assert loaded.input_scaling == "window 20..35 degC"
        assert Predictor(loaded).scaling == InputScaling("window", 20, 35)
    old = torch.load(tmp_path / "w.pth", weights_only=True)
    del old["meta"]["input_scaling"]
    torch.save(old, tmp_path / "old.pth")
    assert Predictor(load_segmenter(tmp_path / "old.pth")).scaling == DEFAULT_SCALING
    from unip_hub.cli import main

    for path, shown in ((tmp_path / "w.pth", "window 20..35 degC"), (tmp_path / "old.pth", "percentile 0.5/99.5")):
        assert main(["info", str(path)]) == 0
        assert json.loads(capsys.readouterr().out)["input_scaling"] == shown  # unip info shows the spec
    predictor = Predictor(seg)  # the window spec reads temperatures: same gray for the same temperature
    np.testing.assert_array_equal(predictor.read(SCENE_C), predictor.read(SCENE_C + 273.15))
    with pytest.raises(RadiometricError, match="has none"):
        predictor.predict(np.zeros((32, 32), np.uint8))


def test_datasets_read_with_the_models_scaling(tmp_path):
    from unip_hub.data import FolderSegDataset

    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    Image.fromarray(SCENE_C).save(tmp_path / "img" / "a.tif")
    Image.fromarray(np.zeros(SCENE_C.shape, np.uint8)).save(tmp_path / "lab" / "a.png")
    data = FolderSegDataset(tmp_path / "img", tmp_path / "lab", ["bg"])
    np.testing.assert_array_equal(data.read_image(tmp_path / "img" / "a.tif"), read_thermal(SCENE_C))
    data.set_input_scaling("window 20..35 degC")
    gray = data.read_image(tmp_path / "img" / "a.tif")
    np.testing.assert_array_equal(gray, InputScaling.parse("window 20..35 degC").to_gray(read_radiometric(SCENE_C)))


def test_fff_without_flirpy_names_the_extra(tmp_path, monkeypatch):
    import sys

    from unip_hub.data.seq import iter_seq_frames

    for name in ("flirpy", "flirpy.io", "flirpy.io.fff", "flirpy.io.seq", "flirpy.util", "flirpy.util.raw"):
        monkeypatch.setitem(sys.modules, name, None)  # as if flirpy were not installed
    for name in ("frame.fff", "flight.seq"):
        (tmp_path / name).write_bytes(b"FFF\x00" + b"\x00" * 60)
    with pytest.raises(RadiometricError, match=r"pip install 'unip\[seq\]'") as info:
        read_radiometric(tmp_path / "frame.fff")
    assert str(tmp_path / "frame.fff") in str(info.value)
    with pytest.raises(RadiometricError, match=r"unip\[seq\]"):
        iter_seq_frames(tmp_path / "flight.seq")


def test_temperature_percentiles_and_levels_through_the_counts_equal_the_float_computation():
    from unip_hub.data.frame import Frame
    from unip_hub.data.readers import celsius_bounds, celsius_levels, percentile_bounds, scale_to_uint8

    rng = np.random.default_rng(2)
    counts = rng.integers(29000, 31000, (30, 40)).astype(np.uint16)
    linear = Frame(counts, (0.01 * counts - 273.15).astype(np.float32), "boson", "counts")
    planck = Frame(counts, (1400.0 / np.log(8000.0 / counts + 1.0) - 273.15).astype(np.float32), "fff", "flir-fff")
    shuffled = Frame(counts, rng.permutation(linear.celsius.ravel()).reshape(30, 40), "odd", "counts")
    falling = Frame(counts, (40.0 - 0.01 * counts).astype(np.float32), "falling", "counts")
    for frame, through_counts in ((linear, True), (planck, True), (shuffled, False), (falling, False)):
        assert (frame.celsius_per_count() is not None) == through_counts, frame.source
        bounds = celsius_bounds(frame)
        assert bounds == percentile_bounds(frame.celsius), frame.source
        np.testing.assert_array_equal(celsius_levels(frame, *bounds), scale_to_uint8(frame.celsius, *bounds))
