"""Radiometric thermal input: files and arrays read to temperatures in degrees Celsius where the data allows it.

What is read (:func:`read_radiometric`):

* FLIR radiometric JPEG (R-JPEG: raw sensor counts and the Planck constants R1, R2, B, F, O, emissivity,
  reflected temperature and distance in FLIR APP1 segments), through the optional pure-Python reader ``flyr``
  (``pip install 'unip[radiometric]'``; flyr is EUPL-1.2 licensed). The object parameters can be overridden
  (:class:`Calibration`); by default the file's own are used.
* Float TIFF / ``.npy`` / arrays: temperatures in degrees Celsius or kelvin (``unit``; ``"auto"`` takes a frame
  whose median is above 173.15 as kelvin, i.e. no scene colder than -100 degC in Celsius or hotter than
  173 degC median in kelvin is guessed wrong; pass the unit for such scenes).
* 16-bit counts: temperatures with a user-supplied linear calibration ``celsius = gain * count + offset``
  (``counts_to_celsius``; a Boson in TLinear mode writes 0.01 K per count: ``(0.01, -273.15)``); without it the
  frame has no temperatures and is only scaled to gray. 8-bit data in a 16-bit container is taken as 8-bit.
* FLIR FFF frames (``.fff``) through the optional ``flirpy`` (``pip install 'unip[seq]'``, MIT); whole FLIR SEQ
  sequences are frame iterators: :func:`unip_hub.data.seq.iter_seq_frames`.
* Refused with a one-line error naming the file and what to do: DJI R-JPEGs (their raw data needs DJI's Thermal
  SDK), a ``.seq`` passed as one frame (use the iterator), CSQ (JPEG-LS compressed frames) and other vendor
  sequences (export them as frames first), corrupt R-JPEGs and R-JPEGs without calibration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.data.frame import Calibration, Frame, RadiometricError
from unip_hub.data.readers import ThermalSource, narrow_to_8bit, read_frame

__all__ = ["Calibration", "Frame", "RadiometricError", "flir_kind", "read_radiometric"]

KELVIN_OFFSET = 273.15
_AUTO_KELVIN_ABOVE = 173.15  # median of a frame above this is taken as kelvin by unit="auto"
SEQUENCE_SUFFIXES = (".seq", ".csq", ".fff", ".ats", ".sfmov")
_DJI_THERMAL = ("M2EA", "ZH20T", "H20T", "M30T", "H30T", "XT2", "ZXT2", "M3T", "M3TD", "M4T", "XT S")


def _jpeg_segments(head: bytes) -> list[tuple[int, bytes]]:
    """(marker, first bytes of the payload) of a JPEG's header segments, up to the start of scan."""
    segments, i = [], 2
    while i + 4 <= len(head) and head[i] == 0xFF:
        marker, length = head[i + 1], int.from_bytes(head[i + 2:i + 4], "big")
        if marker == 0xDA or length < 2:  # start of scan: no more header segments
            break
        segments.append((marker, head[i + 4:i + 4 + min(length - 2, 64)]))
        i += 2 + length
    return segments


def _exif_make_model(path: Path) -> tuple[str, str]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            exif = image.getexif()
    except Exception:  # not our business here: read_frame reports unreadable files
        return "", ""
    return str(exif.get(271, "")).strip(), str(exif.get(272, "")).strip()  # EXIF Make, Model


def flir_kind(path: str | os.PathLike) -> str | None:
    """``"flir"`` for a FLIR R-JPEG, ``"dji"`` for a DJI thermal R-JPEG, ``None`` for any other file."""
    path = Path(path)
    if path.suffix.lower() not in (".jpg", ".jpeg") or not path.is_file():
        return None
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if head[:2] != b"\xff\xd8":
        return None
    segments = _jpeg_segments(head)
    if any(m == 0xE1 and p.startswith(b"FLIR\x00") for m, p in segments):
        return "flir"
    make, model = _exif_make_model(path)
    has_app3 = any(m == 0xE3 for m, _ in segments)  # DJI keeps the raw thermal data in APP3 segments
    if make.upper().startswith("DJI") and (has_app3 or any(t in model.upper() for t in _DJI_THERMAL)):
        return "dji"
    return None


def _read_flir(path: Path, calibration: Calibration) -> Frame:
    try:
        import flyr
    except ImportError as error:
        raise RadiometricError(f"{path}: a FLIR radiometric JPEG; install the optional reader to get its "
                               "temperatures: pip install 'unip[radiometric]' (flyr, EUPL-1.2)") from error
    overrides: dict[str, float] = {}
    if calibration.emissivity is not None:
        overrides["emissivity"] = calibration.emissivity
    if calibration.object_distance is not None:
        overrides["object_distance"] = calibration.object_distance
    if calibration.reflected_temperature is not None:
        overrides["reflected_apparent_temperature"] = calibration.reflected_temperature + KELVIN_OFFSET
    try:
        thermogram = flyr.unpack(str(path))
        if overrides:
            thermogram = thermogram.adjust_metadata(**overrides)
        celsius = np.asarray(thermogram.celsius, dtype=np.float32)
        meta = dict(thermogram.metadata)
    except Exception as error:  # flyr raises many types (ValueError, KeyError, struct.error, ...) on bad data
        raise RadiometricError(f"{path}: a FLIR R-JPEG whose thermal data or calibration cannot be read "
                               f"({type(error).__name__}: {error}); re-export it from the camera or FLIR Thermal "
                               "Studio with radiometric data") from error
    if celsius.ndim != 2 or celsius.size == 0 or not np.isfinite(celsius).any():
        raise RadiometricError(f"{path}: the FLIR R-JPEG holds no usable temperatures (shape {celsius.shape})")
    params = {"emissivity": meta.get("emissivity"), "object_distance": meta.get("object_distance"),
              "reflected_temperature": _to_celsius(meta.get("reflected_apparent_temperature"))}
    return Frame(np.asarray(thermogram.kelvin, dtype=np.float32), celsius, str(path), "flir-rjpeg", params)


def _to_celsius(kelvin: Any) -> float | None:
    return None if kelvin is None else float(kelvin) - KELVIN_OFFSET


def _refuse_vendor_formats(path: Path, kind: str | None) -> None:
    suffix = path.suffix.lower()
    if suffix == ".seq":
        raise RadiometricError(
            f"{path}: a FLIR SEQ sequence, not one frame; read its frames with unip_hub.data.seq.iter_seq_frames "
            "or pass it to unip segment as a video (needs pip install 'unip[seq]': flirpy)")
    if suffix == ".csq":
        raise RadiometricError(
            f"{path}: FLIR CSQ sequences hold JPEG-LS compressed frames, which are not read here; export the "
            "recording from FLIR Thermal Studio / ResearchIR as SEQ or radiometric TIFF frames and pass those")
    if suffix in SEQUENCE_SUFFIXES and suffix != ".fff":
        raise RadiometricError(
            f"{path}: FLIR {suffix[1:].upper()} files are not read directly; export them as radiometric "
            "frames first (FLIR Thermal Studio / ResearchIR: radiometric TIFF) and pass the folder of frames")
    if kind == "dji":
        raise RadiometricError(
            f"{path}: a DJI thermal R-JPEG; its temperatures need DJI's Thermal SDK (dji_irp): convert it to a "
            "float TIFF in degC with the SDK and pass that (reading the JPEG picture would give wrong "
            "temperatures)")


def _array_temperatures(values: np.ndarray, source: str, calibration: Calibration) -> Frame:
    if values.dtype == np.uint8:
        return Frame(values, None, source, "8-bit")
    if values.dtype.kind in "iu":
        narrow = narrow_to_8bit(values)
        if narrow is not None:
            return Frame(narrow, None, source, "8-bit")
        if calibration.counts_to_celsius is None:
            return Frame(values, None, source, "counts")
        gain, offset = calibration.counts_to_celsius
        params = {"gain": gain, "offset": offset}
        if values.dtype != np.uint16:
            celsius = (values.astype(np.float64) * gain + offset).astype(np.float32)
            return Frame(values, celsius, source, "counts", params)
        per_count = (np.arange(int(values.max()) + 1, dtype=np.float64) * gain + offset).astype(np.float32)
        table = per_count.astype(np.float64) if gain >= 0 else None  # the same formula, one value per count
        return Frame(values, per_count[values], source, "counts", params, counts_table=table)
    data = values.astype(np.float32)
    finite = data[np.isfinite(data)]
    unit = calibration.unit
    if unit == "auto":
        unit = "kelvin" if finite.size and float(np.median(finite)) > _AUTO_KELVIN_ABOVE else "celsius"
    celsius = data - np.float32(KELVIN_OFFSET) if unit == "kelvin" else data
    return Frame(values, celsius, source, unit)


def read_radiometric(source: ThermalSource, calibration: Calibration | None = None) -> Frame:
    """Read a thermal frame with its temperatures where the data holds them (see the module docstring).

    Args:
        source: A path (R-JPEG, TIFF, PNG, ``.npy``, ...), a numpy array or a PIL image.
        calibration: Units, counts calibration and FLIR object parameters; defaults otherwise.

    Returns:
        The :class:`Frame` (``celsius`` is ``None`` for 8-bit pictures and uncalibrated counts).

    Raises:
        RadiometricError: A vendor format that cannot be read to temperatures (DJI, SEQ/CSQ, broken R-JPEG).
        ValueError: The file is not a readable image (see :func:`unip_hub.data.read_frame`).
    """
    calibration = calibration or Calibration()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        kind = flir_kind(path)  # the JPEG's header is read once
        _refuse_vendor_formats(path, kind)
        if path.suffix.lower() == ".fff":  # one FLIR FFF frame, through flirpy (pip install 'unip[seq]')
            from unip_hub.data.seq import read_fff

            return read_fff(path, calibration)
        if kind == "flir":
            return _read_flir(path, calibration)
        return _array_temperatures(read_frame(path), str(path), calibration)
    values = read_frame(source)
    name = f"array {getattr(source, 'shape', '')}".strip()
    return _array_temperatures(values, name, calibration)
