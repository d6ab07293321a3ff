"""FLIR SEQ sequences and single FFF frames read to temperatures (degC) through the optional ``flirpy`` reader.

A FLIR ``.seq`` file is a run of FFF frames; each holds a raw-data record (16-bit sensor counts) and a
camera-information record (Planck constants R1, R2, B, F, O, emissivity, object distance, reflected / atmospheric
temperatures). ``flirpy`` (``pip install 'unip[seq]'``, MIT licence, pure Python) indexes the frames
(:class:`flirpy.io.seq.Seq`), parses the records (:class:`flirpy.io.fff.Fff`) and turns counts into degrees with
the frame's own constants (:func:`flirpy.util.raw.raw2temp`); this module checks what it is given and wraps the
result as :class:`~unip_hub.data.radiometric.Frame` objects, as every other radiometric reader does.

Limits: flirpy reads the whole ``.seq`` into memory (a file of N bytes needs N bytes of RAM; about 0.66 MB per
640 x 512 frame); a file larger than half the memory available is refused before it is read, with the way out
(split the recording, or export radiometric TIFF frames and pass the folder). Frames whose raw data is
compressed (PNG; the JPEG-LS of ``.csq`` files) are refused with a clear error, never decoded wrongly.

>>> from unip_hub.data.seq import iter_seq_frames
>>> for frame in iter_seq_frames("flight.seq"):  # doctest: +SKIP
...     frame.celsius.shape, frame.params["emissivity"]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.data.frame import Calibration, Frame, RadiometricError

__all__ = ["SeqFrames", "SeqInfo", "iter_seq_frames", "read_fff", "seq_info"]

_RAW_RECORD, _CAMERA_RECORD = 0x01, 0x20  # FFF record types: raw sensor data, camera information
_RAW_BIG_ENDIAN, _RAW_PNG = 1, 3  # raw-data record subtypes (2: little-endian, what cameras usually write)
_COMPRESSED = (b"\x89PNG", b"\xff\xd8\xff")  # PNG; JPEG / JPEG-LS (the CSQ frames)
_INSTALL = "pip install 'unip[seq]' (flirpy, MIT)"


@dataclass(frozen=True)
class SeqInfo:
    """What a SEQ file holds: ``frames`` FFF frames of ``height`` x ``width`` pixels and the recording's frame
    rate ``fps`` (``None`` when the camera record leaves it 0), all of the first frame."""

    frames: int
    height: int
    width: int
    fps: float | None = None


def _flirpy(path: Path) -> tuple[Any, Any, Any]:
    """(Seq, Fff, raw2temp) of flirpy, or a one-line error naming the file and the install command."""
    try:
        from flirpy.io.fff import Fff
        from flirpy.io.seq import Seq
        from flirpy.util.raw import raw2temp
    except ImportError as error:
        raise RadiometricError(f"{path}: a FLIR {path.suffix.lower()[1:].upper()} file; install the optional "
                               f"reader to get its temperatures: {_INSTALL}") from error
    return Seq, Fff, raw2temp


def _raw_subtype(fff: Any) -> int | None:
    for record in getattr(fff, "records", []):
        if record.record_type == _RAW_RECORD:
            return int(record.record_subtype)
    return None


def _counts(fff: Any, source: str) -> np.ndarray:
    """The frame's raw counts, uint16 (H, W), after checking that they are plain (uncompressed) 16-bit data."""
    subtype = _raw_subtype(fff)
    if subtype is None or not hasattr(fff, "image_offset"):
        raise RadiometricError(f"{source}: the FFF frame has no raw thermal data record; re-export the recording "
                               "with radiometric data")
    head = bytes(fff.data[fff.image_offset:fff.image_offset + 4])
    if subtype == _RAW_PNG or head.startswith(_COMPRESSED):
        raise RadiometricError(f"{source}: the FFF frame's raw data is compressed (PNG / JPEG-LS), which flirpy "
                               "does not decode; export the recording as uncompressed SEQ or radiometric TIFF "
                               "(FLIR Thermal Studio / ResearchIR)")
    try:
        counts = np.array(fff.get_image(), dtype=np.uint16)  # (H, W) copy of the file's little-endian words
    except (ValueError, AttributeError) as error:
        raise RadiometricError(f"{source}: truncated FFF frame ({error}); re-copy the complete file") from error
    return counts.byteswap() if subtype == _RAW_BIG_ENDIAN else counts


def _object_meta(fff: Any, source: str, calibration: Calibration) -> dict[str, Any]:
    """The frame's camera constants with the user's object parameters over them (flirpy's key names, degC)."""
    meta = dict(fff.meta or {})
    if "Planck R1" not in meta:
        raise RadiometricError(f"{source}: the FFF frame has no camera calibration record (Planck constants); "
                               "re-export the recording with radiometric data")
    if calibration.emissivity is not None:
        meta["Emissivity"] = calibration.emissivity
    if calibration.object_distance is not None:
        meta["Object Distance"] = calibration.object_distance
    if calibration.reflected_temperature is not None:
        meta["Reflected Apparent Temperature"] = calibration.reflected_temperature
    if not 0.0 < float(meta["Emissivity"]) <= 1.0:
        raise RadiometricError(f"{source}: the frame's emissivity {meta['Emissivity']} is not in (0, 1]; pass the "
                               "object's emissivity (--emissivity)")
    return meta


def _frame(fff: Any, source: str, calibration: Calibration, raw2temp: Any) -> Frame:
    counts = _counts(fff, source)
    meta = _object_meta(fff, source, calibration)
    with np.errstate(invalid="ignore", divide="ignore"):  # counts outside the calibration become NaN
        celsius = np.asarray(raw2temp(counts.astype(np.float64), meta), dtype=np.float32)  # (H, W)
    if not np.isfinite(celsius).any():
        raise RadiometricError(f"{source}: the frame's counts and Planck constants give no finite temperature")
    params = {"emissivity": float(meta["Emissivity"]), "object_distance": float(meta["Object Distance"]),
              "reflected_temperature": float(meta["Reflected Apparent Temperature"])}
    return Frame(counts, celsius, source, "flir-fff", params)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux / most Unix), ``None`` where the system does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits(path: Path) -> None:
    size, free = path.stat().st_size, available_memory()
    if free is not None and size > free // 2:
        raise RadiometricError(
            f"{path}: {size / 2**30:.1f} GiB, and flirpy reads a SEQ file whole into memory ({free / 2**30:.1f} GiB "
            "available); split the recording into shorter SEQ files, or export it as radiometric TIFF frames "
            "(FLIR Thermal Studio / ResearchIR) and pass the folder of frames with --video")


def _open_seq(path: Path) -> tuple[Any, Any]:
    """(the flirpy Seq of ``path``, raw2temp), after checking that the file holds FFF frames."""
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist")
    Seq, _, raw2temp = _flirpy(path)
    _check_fits(path)
    try:
        seq = Seq(str(path))
    except Exception as error:  # flirpy raises struct.error / ValueError on broken headers
        raise RadiometricError(f"{path}: not a readable FLIR SEQ ({type(error).__name__}: {error}); re-copy the "
                               "complete file") from error
    if len(seq) == 0:
        raise RadiometricError(f"{path}: no FFF frames found (not a FLIR SEQ of uncompressed FFF frames); export "
                               "the recording as SEQ or radiometric TIFF frames")
    return seq, raw2temp


class SeqFrames:
    """The frames of a SEQ file in order (an iterator of :class:`Frame`), with the recording's frame rate ``fps``
    (``None`` when the camera record leaves it 0)."""

    def __init__(self, frames: Iterator[Frame], fps: float | None) -> None:
        self._frames, self.fps = frames, fps

    def __iter__(self) -> SeqFrames:
        return self

    def __next__(self) -> Frame:
        return next(self._frames)


def _frame_rate(fff: Any) -> float | None:
    return float((fff.meta or {}).get("FrameRate") or 0) or None


def iter_seq_frames(path: str | os.PathLike, calibration: Calibration | None = None) -> SeqFrames:
    """The frames of a FLIR ``.seq`` file as radiometric frames, in order.

    The file is checked before the first frame is asked for (missing, unreadable or frameless files fail here,
    not halfway through a video).

    Args:
        path: The ``.seq`` file.
        calibration: Object parameters over each frame's own (emissivity, reflected temperature in degC,
            distance in m); ``None``: the file's.

    Returns:
        An iterator of :class:`~unip_hub.data.radiometric.Frame` (``values`` the uint16 counts (H, W),
        ``celsius`` float32 degC (H, W), ``kind`` ``"flir-fff"``, ``params`` the object parameters used,
        ``source`` ``"<path> frame <i>"``) with the recording's frame rate as ``fps``.

    Raises:
        RadiometricError: flirpy is not installed, the file holds no FFF frames, or a frame lacks raw data or
            calibration, or its raw data is compressed (one line, naming the file and frame).
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    seq, raw2temp = _open_seq(path)
    calibration = calibration or Calibration()

    def frames() -> Iterator[Frame]:
        for i in range(len(seq)):
            source = f"{path} frame {i}"
            try:
                fff = seq[i]
            except Exception as error:  # a damaged record directory inside the file
                raise RadiometricError(f"{source}: unreadable FFF frame ({type(error).__name__}: {error}); "
                                       "re-copy the complete file") from error
            yield _frame(fff, source, calibration, raw2temp)

    return SeqFrames(frames(), _frame_rate(seq[0]))


def seq_info(path: str | os.PathLike) -> SeqInfo:
    """The number of frames and the frame size of a FLIR ``.seq`` file (raises as :func:`iter_seq_frames`)."""
    path = Path(path)
    seq, _ = _open_seq(path)
    fff = seq[0]
    first = _counts(fff, f"{path} frame 0")
    return SeqInfo(len(seq), int(first.shape[0]), int(first.shape[1]), _frame_rate(fff))


def read_fff(path: str | os.PathLike, calibration: Calibration | None = None) -> Frame:
    """One FLIR ``.fff`` frame file as a radiometric frame (see :func:`iter_seq_frames`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist")
    _, Fff, raw2temp = _flirpy(path)
    try:
        fff = Fff(path.read_bytes())
    except Exception as error:  # struct.error / ValueError on a broken header
        raise RadiometricError(f"{path}: not a readable FLIR FFF frame ({type(error).__name__}: {error})") \
            from error
    return _frame(fff, str(path), calibration or Calibration(), raw2temp)
