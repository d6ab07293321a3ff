"""Video: radiometric and 8-bit videos and frame folders segmented into an H.264 overlay video plus per-frame
statistics; running percentile bounds keep a drifting sequence's gray levels stable; Ctrl-C leaves a finalised
video; truncated, header-only and missing videos are one-line errors that leave nothing behind."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from helpers.segmenters import PALETTE, tiny_segmenter
from PIL import Image

from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
from unip_hub.cli import main
from unip_hub.data.radiometric import Calibration
from unip_hub.inference import InferenceOptions, Predictor
from unip_hub.inference.video import VideoSettings, segment_video

av = pytest.importorskip("av")
pytest.importorskip("scipy")
BOSON = Calibration(counts_to_celsius=(0.01, -273.15))


def write_video(path, frames, codec="libx264", fmt="gray", fps=10):
    """Encodes (H, W) uint8 (``gray``) or uint16 (``gray16le``, lossless FFV1) frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape
        stream.pix_fmt = "gray16le" if fmt == "gray16le" else "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format=fmt)):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def drifting_counts(n=12, shape=(48, 64)):
    """A radiometric sequence (Boson counts, 0.01 K) whose scene warms by 0.2 degC per frame and whose hot edge
    flickers (moving the per-frame 99.5th percentile)."""
    base = 25 + 3 * np.random.default_rng(0).standard_normal(shape)
    frames = []
    for t in range(n):
        scene = base + 0.2 * t
        scene[0, :10] += 12.0 * (t % 2)
        frames.append(np.round((scene + 273.15) * 100).astype(np.uint16))
    return frames


def decoded_frames(path):
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name in ("h264", "libx264", "mpeg4")
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def seg():
    return tiny_segmenter(seed=3, palette=PALETTE)


def test_radiometric_video_gives_overlay_video_and_per_frame_temperatures(tmp_path, seg):
    video = write_video(tmp_path / "flight.mkv", drifting_counts(), codec="ffv1", fmt="gray16le")
    record = segment_video(Predictor(seg, calibration=BOSON), video, tmp_path / "out",
                           settings=VideoSettings(batch_size=5, masks=True, hot_above=30.0, progress=False))
    folder = tmp_path / "out" / "flight"
    assert record == {"input": str(video), "frames": 12, "video": str(folder / "overlay.mp4"),
                      "stats": str(folder / "frames.csv"), "interrupted": False}
    frames = decoded_frames(folder / "overlay.mp4")
    assert len(frames) == 12 and frames[0].shape[0] >= 48 and frames[0].shape[1] > 64  # + colour bar, legend
    rows = list(csv.DictReader(open(folder / "frames.csv")))
    assert sorted({int(r["frame"]) for r in rows}) == list(range(12))
    classes = [r for r in rows if r["level"] == "class"]
    assert all(5 < float(r["min"]) <= float(r["max"]) < 70 for r in classes)
    assert {r["frame"] for r in rows if r["hot"] == "True"}  # the flickering edge is above 30 degC
    assert len(list((folder / "masks").glob("*.png"))) == 12
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_running_bounds_keep_the_models_gray_levels_stable(tmp_path, seg):
    video = write_video(tmp_path / "drift.mkv", drifting_counts(16), codec="ffv1", fmt="gray16le")
    seen = {}
    for momentum in (0.0, 0.9):
        predictor = Predictor(seg, calibration=BOSON)
        grays = []
        predictor.forward = lambda x, grays=grays: grays.append(x * seg.std + seg.mean) or seg(x)
        segment_video(predictor, video, tmp_path / f"o{momentum}", InferenceOptions(),
                      VideoSettings(batch_size=4, momentum=momentum, progress=False))
        seen[momentum] = torch.cat(grays)[:, 0, 20:40, 20:40].mean(dim=(1, 2)).numpy()  # (frames,) mean gray
    jitter = {m: np.abs(np.diff(v[6:])).max() for m, v in seen.items()}
    assert jitter[0.0] > 3 * jitter[0.9] and jitter[0.9] < 2.5, jitter  # measured: 5.6 vs 1.6 gray levels


def test_interrupt_leaves_a_finalised_playable_video(tmp_path, seg):
    video = write_video(tmp_path / "long.mp4", [np.full((32, 48), 10 * i, np.uint8) for i in range(20)])
    predictor = Predictor(seg)
    calls = []

    def forward(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        return seg(x)

    predictor.forward = forward
    record = segment_video(predictor, video, tmp_path / "out", settings=VideoSettings(batch_size=4, progress=False))
    assert record["interrupted"] and record["frames"] == 8
    assert len(decoded_frames(tmp_path / "out" / "long" / "overlay.mp4")) == 8


def test_folder_of_frames_through_the_cli(tmp_path, seg, capsys):
    model = save_segmenter_checkpoint(seg, tmp_path / "seg.pth")
    frames = tmp_path / "seq"
    frames.mkdir()
    for i, counts in enumerate(drifting_counts(6, (40, 40))):
        Image.fromarray(counts).save(frames / f"f{i:03d}.png")
    rc = main(["segment", str(frames), "--video", "--model", str(model), "--out", str(tmp_path / "out"), "--quiet",
               "--json", "--mode", "whole", "--counts-to-celsius", "0.01", "-273.15", "--fps", "5"])
    assert rc == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["frames"] == 6 and len(decoded_frames(record["video"])) == 6


def test_video_file_options_apply_without_the_folder_flag(tmp_path, seg, capsys):
    """A video file takes --max-frames, --frame-masks and --batch-frames without --video (that flag is for folders)."""
    model = save_segmenter_checkpoint(seg, tmp_path / "seg.pth")
    video = write_video(tmp_path / "clip.mp4", [np.full((32, 48), 12 * i, np.uint8) for i in range(9)])
    rc = main(["segment", str(video), "--model", str(model), "--out", str(tmp_path / "out"), "--quiet", "--json",
               "--mode", "whole", "--max-frames", "5", "--batch-frames", "2", "--frame-masks"])
    assert rc == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["frames"] == 5 and len(decoded_frames(record["video"])) == 5
    assert len(list((tmp_path / "out" / "clip" / "masks").glob("*.png"))) == 5
    with pytest.raises(ValueError, match="max_frames"):
        VideoSettings(max_frames=0)


def test_truncated_empty_and_missing_videos_are_one_line_errors(tmp_path, seg, capsys):
    model = save_segmenter_checkpoint(seg, tmp_path / "seg.pth")
    src = tmp_path / "in"
    src.mkdir()
    data = write_video(tmp_path / "full.mkv", drifting_counts(10), codec="ffv1", fmt="gray16le").read_bytes()
    (src / "cut.mkv").write_bytes(data[: len(data) // 2])  # frames stop at 0.4 s of the 1 s the header says
    (src / "header.mkv").write_bytes(data[:800])  # header only: no frame
    mp4 = write_video(tmp_path / "full.mp4", [np.zeros((32, 32), np.uint8)] * 5).read_bytes()
    (src / "cut.mp4").write_bytes(mp4[: len(mp4) // 2])  # no index: not openable
    out = tmp_path / "out"
    rc = main(["segment", *(str(src / n) for n in ("cut.mkv", "header.mkv", "cut.mp4")), "--model", str(model),
               "--out", str(out), "--quiet", "--counts-to-celsius", "0.01", "-273.15"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 3
    assert "cut.mkv: truncated" in err[0] and "header.mkv: no video frames" in err[1]
    assert "cut.mp4: not a readable video" in err[2]
    assert not out.exists() or not any(out.iterdir())  # nothing partial, no temporaries


def test_measure_video_reports_both_rates(tmp_path, seg):
    from unip_hub.benchmark.video import measure_video

    video = write_video(tmp_path / "m.mp4", [np.full((32, 32), 8 * i, np.uint8) for i in range(8)])
    result = measure_video(Predictor(seg), video, tmp_path / "out", settings=VideoSettings(progress=False))
    assert result["frames"] == 8 and result["model_fps"] > 0 and result["end_to_end_fps"] > 0
    assert result["ratio"] == pytest.approx(result["end_to_end_fps"] / result["model_fps"])


def test_writer_inline_or_in_a_thread_writes_the_same_outputs(tmp_path, seg):
    video = write_video(tmp_path / "clip.mkv", drifting_counts(6), codec="ffv1", fmt="gray16le")
    tables = []
    for threaded in (False, True):
        record = segment_video(Predictor(seg, calibration=BOSON), video, tmp_path / f"o{threaded}",
                               settings=VideoSettings(batch_size=4, progress=False, writer_thread=threaded))
        assert record["frames"] == 6 and not record["interrupted"]
        tables.append(open(record["stats"]).read())
        assert len(decoded_frames(record["video"])) == 6
    assert tables[0] == tables[1]
