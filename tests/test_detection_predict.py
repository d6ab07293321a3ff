"""Detection inference: the predictor's raw and prepared doors, per-box temperatures, ``unip detect`` on 8-bit, 16-bit
and float degC images (overlays, CSV rows, COCO-results JSON, hot flags), a video and a folder of frames, and bad
inputs (one-line errors, nothing half-written)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("torchvision")

from unip_hub.cli import main
from unip_hub.detection.outputs import box_temperatures, detection_rows
from unip_hub.detection.predict import DetectionPredictor

SIZE = 64


@pytest.fixture(scope="module")
def det_path(tmp_path_factory):
    """An untrained tiny Faster R-CNN (2 classes) saved as a detector file; score threshold 0 so it always finds
    boxes."""
    from unip_hub.detection import create_detector, save_detector

    torch.manual_seed(0)
    det = create_detector("unip_vit_tiny", num_classes=2, class_names=["person", "car"], min_size=SIZE,
                          max_size=SIZE, depth=2, embed_dim=64, num_heads=2, out_channels=32,
                          detector_kwargs={"box_score_thresh": 0.0, "box_detections_per_img": 20,
                                           "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50})
    path = tmp_path_factory.mktemp("det") / "det.pth"
    save_detector(det.eval(), path)
    return path


@pytest.fixture(scope="module")
def det(det_path):
    from unip_hub.detection import load_detector

    return load_detector(det_path)


def scene(seed: int = 0) -> np.ndarray:
    from unip_hub.data.synthetic import make_scene

    return make_scene(48, 64, np.random.default_rng(seed))[0]  # (48, 64) uint8


def test_predictor_doors_agree(det, det_path, tmp_path):
    from unip_hub.detection import load_detector

    gray = scene()
    Image.fromarray(gray).save(tmp_path / "a.png")
    p = DetectionPredictor(det)
    x = p.to_tensor(p.read(tmp_path / "a.png"))
    assert x.shape == (1, 3, 48, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    torch.testing.assert_close(x[0, 0], torch.from_numpy(gray).float() / 255)
    raw, prepared, array = p.predict(tmp_path / "a.png"), p.predict_torch(x)[0], p.predict(gray)
    assert set(raw) == {"boxes", "scores", "labels"} and len(raw["boxes"]) > 0
    for a in (prepared, array):
        for k in raw:
            torch.testing.assert_close(a[k], raw[k])
    assert raw["boxes"].shape[1] == 4 and raw["labels"].dtype == torch.int64
    assert int(raw["labels"].min()) >= 0 and int(raw["labels"].max()) < 2
    assert float(raw["boxes"][:, [0, 2]].max()) <= 64 and float(raw["boxes"][:, [1, 3]].max()) <= 48
    assert det.training is False
    strict = DetectionPredictor(load_detector(det_path), score_thresh=float(raw["scores"].median()),
                                max_detections=3).predict(gray)  # sets the (fresh) detector's own thresholds
    assert 0 < len(strict["scores"]) <= 3 and float(strict["scores"].min()) >= float(raw["scores"].median())
    with pytest.raises(TypeError, match="predict_torch takes a float"):
        p.predict_torch(torch.from_numpy(gray))
    with pytest.raises(TypeError, match="not a raw frame"):
        p.predict(x)  # a prepared batch through the raw door
    with pytest.raises(ValueError, match="score_thresh"):
        DetectionPredictor(det, score_thresh=2.0)


def test_box_temperatures_by_hand():
    celsius = np.arange(20, dtype=np.float32).reshape(4, 5)  # rows 0..3, values 5 * row + column
    celsius[0, 0] = np.nan
    boxes = np.array([[0, 0, 2, 2], [1.5, 2.2, 3.0, 4.0], [4, 4, 5, 5]])
    masks = np.zeros((3, 4, 5), bool)
    masks[0, 1, 1] = masks[0, 0, 1] = True
    plain, masked = box_temperatures(celsius, boxes), box_temperatures(celsius, boxes, masks)
    assert plain[0] == {"min": 1.0, "mean": 4.0, "max": 6.0, "p95": 5.9}  # NaN left out
    assert plain[1] == {"min": 11.0, "mean": 14.0, "max": 17.0, "p95": 16.85}  # rows 2-3, columns 1-2
    assert plain[2] == dict.fromkeys(("min", "mean", "max", "p95"))  # outside the frame
    assert masked[0] == {"min": 1.0, "mean": 3.5, "max": 6.0, "p95": 5.75}
    rows = detection_rows({"boxes": boxes[:2], "scores": np.array([0.9, 0.4]), "labels": np.array([1, 0])},
                          ["person", "car"], celsius, hot_above=10.0)
    assert [(r["name"], r["hot"], r["max"]) for r in rows] == [("car", False, 6.0), ("person", True, 17.0)]
    assert detection_rows({"boxes": boxes[:1], "scores": [0.5], "labels": [0]}, ["p", "c"])[0]["hot"] is None


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_on_8bit_16bit_and_degc_images(det, det_path, tmp_path, capsys):
    gray = scene(1)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(gray).save(folder / "eight.png")
    Image.fromarray((gray.astype(np.uint16) * 200 + 1000).astype(np.uint16)).save(folder / "sixteen.png")
    celsius = (10.0 + 0.2 * gray).astype(np.float32)  # 10..61 degC
    Image.fromarray(celsius).save(folder / "degc.tiff")
    out = tmp_path / "out"
    assert main(["detect", str(folder), "--model", str(det_path), "--out", str(out), "--hot-above", "40",
                 "--quiet"]) == 0
    assert "3 of 3 input(s)" in capsys.readouterr().out
    results = json.loads((out / "detections.json").read_text())
    total = 0
    for name in ("eight", "sixteen", "degc"):
        overlay = Image.open(out / "overlay" / f"{name}.png")
        assert overlay.mode == "RGB" and overlay.size[1] >= 48 and overlay.size[0] >= 64
        rows = read_rows(out / "csv" / f"{name}.csv")
        assert rows and list(rows[0])[:8] == ["id", "x0", "y0", "x1", "y1", "class", "name", "score"]
        total += len(rows)
        mine = [e for e in results if e["file_name"] == name]
        assert len(mine) == len(rows)
        x0, y0, x1, y1 = (float(rows[0][k]) for k in ("x0", "y0", "x1", "y1"))
        assert mine[0]["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=0.02)
        assert mine[0]["category_id"] == int(rows[0]["class"]) + 1
    assert len(results) == total
    assert read_rows(out / "csv" / "eight.csv")[0]["max"] == ""  # no temperatures in an 8-bit image
    hot = read_rows(out / "csv" / "degc.csv")
    expected = detection_rows(DetectionPredictor(det).predict(folder / "degc.tiff"), ["person", "car"], celsius, 40.0)
    assert [float(r["max"]) for r in hot] == pytest.approx([r["max"] for r in expected])
    for r in hot:
        assert 10 <= float(r["min"]) <= float(r["mean"]) <= float(r["max"]) <= 61.01
        assert float(r["min"]) <= float(r["p95"]) <= float(r["max"])
        assert (r["hot"] == "True") == (float(r["max"]) > 40)
    assert Image.open(out / "overlay" / "degc.png").size[0] > 64  # thermal rendering with colour bar and legend


def test_video_and_frame_folder(det_path, tmp_path):
    av = pytest.importorskip("av")
    frames = [scene(i) for i in range(3)]
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    seq = tmp_path / "seq"
    seq.mkdir()
    for i, f in enumerate(frames):
        np.save(seq / f"{i:03d}.npy", (10.0 + 0.2 * f).astype(np.float32))
    out = tmp_path / "out"
    assert main(["detect", str(video), str(seq), "--video", "--model", str(det_path), "--out", str(out),
                 "--batch-frames", "2", "--quiet", "--hot-above", "45"]) == 0
    for name, radiometric in (("clip", False), ("seq", True)):
        with av.open(str(out / name / "overlay.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == 3
        rows = read_rows(out / name / "frames.csv")
        assert sorted({int(r["frame"]) for r in rows}) == [0, 1, 2]
        assert (rows[0]["max"] != "") == radiometric


def test_bad_inputs_are_one_line_errors(det_path, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(scene()).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    out = tmp_path / "out"
    assert main(["detect", str(folder), "--model", str(det_path), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert [line.startswith("unip detect: error:") for line in err.splitlines() if "broken.png" in line] == [True]
    assert sorted(p.name for p in (out / "csv").iterdir()) == ["good.csv"]
    assert not (out / "overlay" / "broken.png").exists()
    assert {e["file_name"] for e in json.loads((out / "detections.json").read_text())} == {"good"}
    assert main(["detect", str(folder / "good.png"), "--model", str(det_path), "--out", str(out),
                 "--score-thresh", "2"]) == 2
    assert main(["detect", str(tmp_path / "missing.png"), "--model", str(det_path), "--out", str(out)]) == 2
    assert main(["detect", str(folder / "good.png"), "--model", str(folder / "good.png"), "--out", str(out)]) == 2
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file left behind


@pytest.mark.slow
def test_onnxruntime_gives_the_torch_detections(det_path, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    Image.fromarray(scene(2)).save(tmp_path / "a.png")
    args = ["detect", str(tmp_path / "a.png"), "--model", str(det_path), "--quiet", "--score-thresh", "0.3",
            "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "torch")]) == 0
    assert main([*args, "--out", str(tmp_path / "onnx"), "--runtime", "onnxruntime"]) == 0
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["det.s0.3-n0.5-d20.onnx"]  # thresholds in the name
    ours, theirs = read_rows(tmp_path / "torch" / "csv" / "a.csv"), read_rows(tmp_path / "onnx" / "csv" / "a.csv")
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert a["name"] == b["name"]
        assert [float(a[k]) for k in ("x0", "y0", "x1", "y1", "score")] == pytest.approx(
            [float(b[k]) for k in ("x0", "y0", "x1", "y1", "score")], abs=0.02)
