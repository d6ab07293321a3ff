"""FLIR SEQ / FFF through flirpy: synthetic FFF frames (header, record directory, raw 16-bit counts, camera-info
record with Planck constants) written by a small helper; temperatures checked against the Planck formula."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from unip_hub.data.radiometric import Calibration, RadiometricError, read_radiometric
from unip_hub.data.seq import SeqInfo, iter_seq_frames, read_fff, seq_info

pytest.importorskip("flirpy")

R1, R2, B, F, PO = 17096.453, 0.046642166, 1428.0, 1.0, -342  # typical FLIR Planck constants
KELVIN = 273.15


def planck_celsius(counts: np.ndarray) -> np.ndarray:
    """Emissivity 1, no atmosphere: T = B / ln(R1 / (R2 * (counts + O)) + F) - 273.15."""
    return B / np.log(R1 / (R2 * (counts.astype(np.float64) + PO)) + F) - KELVIN


def _camera_record(emissivity: float = 1.0, distance: float = 0.0) -> bytes:
    """The FFF camera-information record at the offsets flirpy (after ExifTool's FLIR.pm) reads."""
    rec = bytearray(0x500)
    struct.pack_into("<H", rec, 0, 2)  # 2: little-endian
    for offset, value in ((0x20, emissivity), (0x24, distance), (0x28, 293.15), (0x2C, 293.15), (0x30, 293.15),
                          (0x34, 1.0), (0x3C, 0.5), (0x58, R1), (0x5C, B), (0x60, F), (0x70, 0.006569),
                          (0x74, 0.01262), (0x78, -0.002276), (0x7C, -0.00667), (0x80, 1.9), (0x30C, R2)):
        struct.pack_into("<f", rec, offset, value)
    struct.pack_into("<i", rec, 0x308, PO)
    struct.pack_into("<H", rec, 0x464, 30)  # frame rate
    return bytes(rec)


def fff_frame(counts: np.ndarray, subtype: int = 2, **camera) -> bytes:
    """One FFF frame: 64-byte header, a directory of two 32-byte records, raw data, camera information."""
    h, w = counts.shape
    raw = bytearray(0x20)
    struct.pack_into("<HHH", raw, 0, 2, w, h)
    raw += counts.astype("<u2").tobytes()
    cam = _camera_record(**camera)
    raw_at, cam_at = 64 + 2 * 32, 64 + 2 * 32 + len(raw)
    header = struct.pack("<4s16sIIIIH7HIII", b"FFF\x00", b"CAMCTRL", 100, 64, 2, 2, 0, *[0] * 7, 0, 0, 0)
    records = struct.pack("<HHIIIIIII", 1, subtype, 100, 1, raw_at, len(raw), 0, 0, 0)
    records += struct.pack("<HHIIIIIII", 0x20, 1, 100, 1, cam_at, len(cam), 0, 0, 0)
    return header + records + bytes(raw) + cam


def _scene(i: int, shape: tuple[int, int] = (12, 16)) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(2_400, 5_400, size=shape, dtype=np.uint16)  # about 1..59 degC with these constants


def write_seq(path: Path, n: int = 3) -> list[np.ndarray]:
    scenes = [_scene(i) for i in range(n)]
    path.write_bytes(b"".join(fff_frame(s) for s in scenes))
    return scenes


def test_seq_frames_are_temperatures_by_the_planck_formula(tmp_path):
    path = tmp_path / "flight.seq"
    scenes = write_seq(path)
    assert seq_info(path) == SeqInfo(3, 12, 16, 30.0)
    reader = iter_seq_frames(path)
    assert reader.fps == 30.0  # the recording's rate, without reading the file a second time
    frames = list(reader)
    assert len(frames) == 3
    for i, (frame, counts) in enumerate(zip(frames, scenes, strict=True)):
        assert frame.celsius.dtype == np.float32 and frame.celsius.shape == (12, 16)
        np.testing.assert_array_equal(frame.values, counts)
        np.testing.assert_allclose(frame.celsius, planck_celsius(counts), atol=1e-3)
        assert frame.kind == "flir-fff" and frame.source == f"{path} frame {i}"
        assert frame.params["emissivity"] == pytest.approx(1.0)
    assert 0 < frames[0].celsius.min() < frames[0].celsius.max() < 60


def test_object_parameters_override_the_files(tmp_path):
    path = tmp_path / "one.fff"
    counts = _scene(0)
    path.write_bytes(fff_frame(counts))
    own = read_radiometric(path)  # an .fff is one frame
    np.testing.assert_allclose(own.celsius, planck_celsius(counts), atol=1e-3)
    lower = read_fff(path, Calibration(emissivity=0.8, reflected_temperature=0.0))
    assert lower.params["emissivity"] == pytest.approx(0.8) and lower.params["reflected_temperature"] == 0.0
    warm = own.celsius > 5  # objects warmer than the reflected 0 degC look hotter with a lower emissivity
    assert (lower.celsius[warm] > own.celsius[warm]).all()


def test_bad_sequences_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.seq"
    empty.write_bytes(b"\x00" * 128)
    with pytest.raises(RadiometricError, match="no FFF frames") as info:
        iter_seq_frames(empty)  # checked before the first frame is asked for
    assert str(empty) in str(info.value) and "\n" not in str(info.value)
    png = tmp_path / "png.seq"
    png.write_bytes(fff_frame(_scene(1), subtype=3))
    with pytest.raises(RadiometricError, match="compressed"):
        next(iter_seq_frames(png))
    with pytest.raises(FileNotFoundError):
        iter_seq_frames(tmp_path / "missing.seq")
    with pytest.raises(RadiometricError, match="CSQ"):
        read_radiometric(tmp_path / "flight.csq")


def test_big_endian_raw_data_is_swapped(tmp_path):
    counts = _scene(2)
    data = bytearray(fff_frame(counts, subtype=1))
    start = 64 + 64 + 0x20
    data[start:start + counts.nbytes] = counts.astype(">u2").tobytes()
    path = tmp_path / "be.fff"
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(read_fff(path).values, counts)


def test_seq_through_the_video_path(tmp_path):
    """`unip segment flight.seq`: the video path reads SEQ frames in degC and writes the overlay and the table."""
    pytest.importorskip("av")
    pytest.importorskip("scipy")
    from helpers.segmenters import PALETTE, tiny_segmenter

    from unip_hub.inference import Predictor
    from unip_hub.inference.video import VideoSettings, is_video, segment_video

    path = tmp_path / "flight.seq"
    write_seq(path, n=4)
    assert is_video(path)
    seg = tiny_segmenter(seed=3, palette=PALETTE)
    record = segment_video(Predictor(seg), path, tmp_path / "out", settings=VideoSettings(batch_size=2, progress=False))
    out = tmp_path / "out" / "flight"
    assert record["frames"] == 4
    assert (out / "overlay.mp4").stat().st_size > 0
    import csv

    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert sorted({int(r["frame"]) for r in rows}) == [0, 1, 2, 3]
    assert float(next(r for r in rows if r["frame"] == "1")["time_s"]) == pytest.approx(1 / 30, abs=1e-3)  # SEQ rate
    temps = [float(r[k]) for r in rows for k in ("min", "max")]
    assert all(np.isfinite(temps))  # temperatures from the frames' Planck constants, not gray levels


def test_a_sequence_larger_than_the_memory_is_refused_before_reading(tmp_path, monkeypatch):
    from unip_hub.data import seq

    path = tmp_path / "long.seq"
    write_seq(path)
    monkeypatch.setattr(seq, "available_memory", lambda: path.stat().st_size)  # only twice the file would fit
    with pytest.raises(RadiometricError, match="reads a SEQ file whole into memory") as info:
        iter_seq_frames(path)
    assert str(path) in str(info.value) and "TIFF frames" in str(info.value)
    monkeypatch.setattr(seq, "available_memory", lambda: None)  # a system that does not say: read it
    assert len(list(iter_seq_frames(path))) == 3
