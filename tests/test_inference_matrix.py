"""Every input scaling x every input kind x every entry point: each cell segments at the input's size (with
temperatures in the input's range where it has them) or fails with one line saying why that combination cannot work.

Scalings: percentile 0.5/99.5, window 20..60 degC, 8-bit. Inputs (built here): 8-bit PNG, 16-bit counts PNG and
TIFF (with and without a counts calibration), float degC TIFF, float kelvin NPY, MFNet RGBA PNG, a FLIR R-JPEG
(shared samples + flyr), an 8-bit video file, a folder of 16-bit frames (with and without calibration). Entries:
the Predictor's raw door, ``unip segment``, ``unip eval`` on a labelled folder (images), the video pipeline
(``segment_video``; videos and folders). The entries must agree with each other: ``unip segment``'s mask and
``unip eval``'s predictions equal the Predictor's (eval scores 100 % against the Predictor's masks as labels).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.samples import SAMPLES
from helpers.segmenters import CLASSES, tiny_segmenter
from PIL import Image

from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
from unip_hub.cli import main
from unip_hub.data.frame import Calibration
from unip_hub.hub.segmenters import load_segmenter
from unip_hub.inference import InferenceOptions, Predictor

RJPEG = SAMPLES / "rjpeg" / "ax8.jpg"
SCALINGS = {"percentile": "percentile 0.5/99.5", "window": "window 20..60 degC", "8-bit": "8-bit"}
BOSON = (0.01, -273.15)  # counts of 0.01 K -> degC
H, W = 40, 56
_SCENE = 20.0 + 35.0 * np.linspace(0, 1, H * W).reshape(H, W)  # 20..55 degC
_SCENE = (_SCENE + 2.0 * np.random.default_rng(0).standard_normal((H, W))).astype(np.float32)
_COUNTS = np.round((_SCENE + 273.15) * 100).astype(np.uint16)
_LOW, _HIGH = float(_SCENE.min()), float(_SCENE.max())


def _counts_png(path: Path) -> Path:
    Image.fromarray(_COUNTS).save(path)  # I;16
    return path


def _counts_tiff(path: Path) -> Path:
    Image.fromarray(_COUNTS).save(path)  # I;16 TIFF
    return path


def _degc_tiff(path: Path) -> Path:
    Image.fromarray(_SCENE, mode="F").save(path)  # float32 TIFF in degC
    return path


def _kelvin_npy(path: Path) -> Path:
    np.save(path, _SCENE + np.float32(273.15))
    return path


def _png8(path: Path) -> Path:
    Image.fromarray(np.round((_SCENE - _LOW) / (_HIGH - _LOW) * 255).astype(np.uint8)).save(path)
    return path


def _mfnet(path: Path) -> Path:
    rgbt = np.random.default_rng(1).integers(0, 256, (H, W, 4), dtype=np.uint8)  # R, G, B, thermal
    Image.fromarray(rgbt, "RGBA").save(path)
    return path


def _video(path: Path) -> Path:
    av = pytest.importorskip("av")
    gray = np.round((_SCENE - _LOW) / (_HIGH - _LOW) * 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = H, W, "yuv420p"
        for t in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(gray, 3 * t, axis=1), format="gray")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _frames(path: Path) -> Path:
    path.mkdir()
    for t in range(3):
        Image.fromarray(np.roll(_COUNTS, 2 * t, axis=0)).save(path / f"f{t:02d}.png")
    return path


def _rjpeg(path: Path) -> Path:
    pytest.importorskip("flyr")
    if not RJPEG.is_file():
        pytest.skip("../shared/thermal-samples absent")
    path.write_bytes(RJPEG.read_bytes())
    return path


# name -> (file name, writer, counts calibration, input kind: "8-bit" | "counts" | "temperatures", video)
IMAGES = {
    "png8": ("png8.png", _png8, None, "8-bit"),
    "counts_png": ("counts.png", _counts_png, None, "counts"),
    "counts_png_cal": ("counts.png", _counts_png, BOSON, "temperatures"),
    "counts_tiff": ("counts.tif", _counts_tiff, None, "counts"),
    "counts_tiff_cal": ("counts.tif", _counts_tiff, BOSON, "temperatures"),
    "degc_tiff": ("degc.tif", _degc_tiff, None, "temperatures"),
    "kelvin_npy": ("kelvin.npy", _kelvin_npy, None, "temperatures"),
    "mfnet_rgba": ("mfnet.png", _mfnet, None, "8-bit"),
    "rjpeg": ("ax8.jpg", _rjpeg, None, "temperatures"),
}
VIDEOS = {
    "video": ("clip.mp4", _video, None, "8-bit"),
    "frames": ("frames", _frames, None, "counts"),
    "frames_cal": ("frames", _frames, BOSON, "temperatures"),
}


def refusal(scaling: str, kind: str) -> str | None:
    """Why ``scaling`` cannot read an input of ``kind`` (a pattern of the one-line error), or None: it works."""
    if scaling == "window" and kind != "temperatures":
        return "the model scales temperatures .* has none"
    if scaling == "8-bit" and kind != "8-bit":
        return "takes 8-bit frames as they are"
    return None


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One tiny segmenter checkpoint per scaling, stored with that scaling (as ``unip finetune`` writes it)."""
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for name, spec in SCALINGS.items():
        seg = tiny_segmenter(seed=3)
        seg.input_scaling = spec
        out[name] = save_segmenter_checkpoint(seg, folder / f"{name}.pth")
    return out


def _counts_args(counts):
    return ["--counts-to-celsius", *map(str, counts)] if counts else []


def _check_stats(stats_file: Path) -> None:
    """Temperatures of the written table lie in the input's range (Boson rounding: 0.01 K)."""
    table = json.loads(stats_file.read_text())
    assert table["unit"] == "degC" and table["classes"]
    for row in table["classes"]:
        assert _LOW - 0.01 <= row["min"] <= row["max"] <= _HIGH + 0.01


@pytest.mark.parametrize("scaling", list(SCALINGS))
@pytest.mark.parametrize("source", list(IMAGES))
def test_image_cells(tmp_path, models, scaling, source, capsys):
    filename, write, counts, kind = IMAGES[source]
    path = write(tmp_path / filename)
    why = refusal(scaling, kind)
    seg = load_segmenter(models[scaling])
    predictor = Predictor(seg, calibration=Calibration(counts_to_celsius=counts))
    out = tmp_path / "out"
    code = main(["segment", str(path), "--model", str(models[scaling]), "--out", str(out), "--mode", "whole",
                 "--quiet", *_counts_args(counts)])
    err = capsys.readouterr().err
    # unip eval on a labelled folder holding this one image, labelled with the Predictor's own mask (or zeros)
    root = tmp_path / "data"
    (root / "images" / "test").mkdir(parents=True)
    (root / "labels" / "test").mkdir(parents=True)
    (root / "images" / "test" / filename).write_bytes(path.read_bytes())
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    if why is not None:
        with pytest.raises(ValueError, match=why):
            predictor.predict(path, mode="whole")
        assert code == 1 and len(err.strip().splitlines()) == 1 and str(path) in err
        assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))  # nothing written
        Image.fromarray(np.zeros(predictor.read_frame(path).shape, np.uint8)).save(
            root / "labels" / "test" / f"{Path(filename).stem}.png")
        assert main(["eval", str(models[scaling]), "--dataset", "folder", "--data-root", str(root), "--native",
                     "--mode", "whole", "--num-workers", "0", "--no-progress", *_counts_args(counts)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        return
    mask = predictor.predict(path, mode="whole").numpy()
    size = predictor.read_frame(path).shape
    assert mask.shape == size
    assert code == 0, err
    name = Path(filename).stem
    written = np.asarray(Image.open(out / "masks" / f"{name}.png"))
    np.testing.assert_array_equal(written, mask)  # unip segment == the Predictor: one reading, one scaling
    has_temperatures = predictor.read_frame(path).celsius is not None
    assert has_temperatures == (kind == "temperatures")
    assert (out / "stats" / f"{name}.json").is_file() == has_temperatures
    if has_temperatures and source != "rjpeg":
        _check_stats(out / "stats" / f"{name}.json")
    Image.fromarray(mask.astype(np.uint8)).save(root / "labels" / "test" / f"{name}.png")
    result = tmp_path / "eval.json"
    assert main(["eval", str(models[scaling]), "--dataset", "folder", "--data-root", str(root), "--native",
                 "--mode", "whole", "--num-workers", "0", "--no-progress", "--out", str(result),
                 *_counts_args(counts)]) == 0
    # every pixel right: eval reads the image as the Predictor does
    assert json.loads(result.read_text())["aAcc"] == pytest.approx(1.0)


@pytest.mark.parametrize("scaling", list(SCALINGS))
@pytest.mark.parametrize("source", list(VIDEOS))
def test_video_cells(tmp_path, models, scaling, source, capsys):
    pytest.importorskip("av")
    pytest.importorskip("scipy")
    from unip_hub.inference.video import VideoSettings, segment_video

    filename, write, counts, kind = VIDEOS[source]
    path = write(tmp_path / filename)
    why = refusal(scaling, kind)
    predictor = Predictor(load_segmenter(models[scaling]), calibration=Calibration(counts_to_celsius=counts))
    settings = VideoSettings(batch_size=2, masks=True, progress=False)
    options = InferenceOptions(mode="whole")
    out = tmp_path / "out"
    code = main(["segment", str(path), "--model", str(models[scaling]), "--out", str(out / "cli"), "--mode",
                 "whole", "--quiet", "--video", "--frame-masks", "--batch-frames", "2", *_counts_args(counts)])
    err = capsys.readouterr().err
    if why is not None:
        with pytest.raises(ValueError, match=why):
            segment_video(predictor, path, out / "api", options, settings)
        assert code == 1 and len(err.strip().splitlines()) == 1
        assert not any(p.is_file() for p in out.rglob("*"))  # nothing half-written
        return
    record = segment_video(predictor, path, out / "api", options, settings)
    assert code == 0, err
    assert record["frames"] == 3 and not record["interrupted"]
    stem = path.stem if path.is_file() else path.name
    for where in ("api", "cli"):
        masks = sorted((out / where / stem).rglob("*.png"))
        assert len(masks) == 3 and all(np.asarray(Image.open(m)).shape == (H, W) for m in masks)
        with open(out / where / stem / "frames.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert {int(r["frame"]) for r in rows} == {0, 1, 2}
        temps = [float(r["max"]) for r in rows if r["max"] not in ("", None)]
        assert bool(temps) == (kind == "temperatures")
        assert all(_LOW - 0.01 <= t <= _HIGH + 2.01 for t in temps)  # frames are rolled copies of the scene
    first = np.asarray(Image.open(sorted((out / "api" / stem).rglob("*.png"))[0]))
    if source != "video":  # lossless frames: the first frame's mask is the Predictor's (its bounds are its own;
        frame0 = sorted(path.iterdir())[0]  # smoothing starts with the second frame)
        np.testing.assert_array_equal(first, predictor.predict(frame0, mode="whole").numpy())


def test_prepared_door_takes_only_tensors_and_raw_door_never_guesses(models):
    predictor = Predictor(load_segmenter(models["window"]))
    degc = _SCENE.copy()  # float degC: raw data, never taken as a normalised input
    prepared = predictor.set_image(degc)
    assert prepared.frame.kind == "celsius" and prepared.gray.dtype == np.uint8 and prepared.size == (H, W)
    torch.testing.assert_close(predictor.predict(degc), predictor.predict_torch(prepared.tensor)[0])
    with pytest.raises(TypeError, match="predict_torch"):
        predictor.predict(prepared.tensor)
    with pytest.raises(TypeError, match="logits_torch takes"):
        predictor.predict_torch(degc)
