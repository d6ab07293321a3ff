"""Readers for the infrared images and label maps a user brings (UNIP, ICLR 2025, section 6 of the reference).

Everything ends up as one 8-bit gray frame ``(H, W)`` because that is what the UNIP models were trained on
(gray copied to three channels). Supported inputs:

* 8-bit gray PNG/JPEG/BMP/TIFF (camera output after AGC): returned unchanged.
* 16-bit radiometric PNG/TIFF (PIL modes ``I;16``, ``I;16B``, ``I``, ``F``; raw counts such as 6,700-7,100):
  robust per-image scaling, the 0.5th and 99.5th percentiles are mapped to 0 and 255 (see :func:`to_uint8`).
  8-bit data stored in a 16-bit container (all values below 256, or all multiples of 256) is taken as 8-bit.
* 4-channel PNG (MFNet, R, G, B, thermal): the thermal channel, index 3 (unless that channel is 255 everywhere:
  then it is an ordinary opaque RGBA picture and its RGB luma is used).
* RGB images (a colour-mapped thermal JPEG) and palette images: ITU-R 601 luma, exactly PIL's ``convert("L")``.
* numpy arrays and ``.npy`` files of any of the above (``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``, C in 1, 3, 4).

Odd input raises a :class:`ValueError` that names the file and what is wrong with it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from unip_hub.constants import HIGH_PERCENTILE, LOW_PERCENTILE
from unip_hub.data.frame import Frame

__all__ = ["HIGH_PERCENTILE", "LOW_PERCENTILE", "celsius_bounds", "celsius_levels", "frame_to_gray",
           "narrow_to_8bit", "percentile_bounds", "read_frame", "read_label", "read_thermal",
           "scale_to_uint8", "to_uint8"]

ThermalSource = str | os.PathLike | np.ndarray | Image.Image

_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_COLOUR_MODES = ("RGB", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1", "La", "RGBa")


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation (both of its branches), so histogram percentiles equal ``np.percentile``."""
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t


def _integer_percentiles(values: np.ndarray, quantiles: tuple[float, ...], mapped: np.ndarray | None = None
                         ) -> list[float]:
    """``np.percentile(values, quantiles)`` (linear method) of an unsigned 8/16-bit array from its histogram:
    one pass over the pixels instead of a float64 copy and a partition. ``mapped`` (a non-decreasing table of
    one value per count): the percentiles of ``mapped[values]`` instead."""
    cumulative = np.cumsum(np.bincount(values.ravel()))  # (max + 1,) pixels at or below each value
    out = []
    for q in quantiles:
        pos = (cumulative[-1] - 1) * (q / 100)  # numpy's virtual index of the linear method
        k = int(np.floor(pos))
        a, b = np.searchsorted(cumulative, [k, min(k + 1, cumulative[-1] - 1)], side="right")  # order statistics
        if mapped is not None:
            a, b = mapped[a], mapped[b]
        out.append(_lerp(float(a), float(b), float(pos - k)))
    return out


def celsius_bounds(frame: Frame, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE
                   ) -> tuple[float, float] | None:
    """:func:`percentile_bounds` of a frame's temperatures (``frame.celsius``), through the counts' histogram when
    the temperatures are a function of them (:meth:`~unip_hub.data.frame.Frame.celsius_per_count`)."""
    table = frame.celsius_per_count()
    if table is None:
        return percentile_bounds(frame.celsius, low, high)
    lo, hi = _integer_percentiles(frame.values, (low, high), table)
    if hi > lo:
        return lo, hi
    return float(table[frame.values.min()]), float(table[frame.values.max()])


def celsius_levels(frame: Frame, lo: float, hi: float) -> np.ndarray:
    """:func:`scale_to_uint8` of a frame's temperatures, through a lookup table of the counts when it can."""
    table = frame.celsius_per_count()
    return scale_to_uint8(frame.celsius, lo, hi) if table is None else scale_to_uint8(table, lo, hi)[frame.values]


def percentile_bounds(array: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE
                      ) -> tuple[float, float] | None:
    """The ``low`` / ``high`` percentiles of the finite values (min / max when they coincide); ``None`` when no
    value is finite. 8/16-bit counts go through their histogram (the same numbers, several times faster)."""
    values = np.asarray(array)
    if values.dtype in (np.uint8, np.uint16) and values.size:
        lo, hi = _integer_percentiles(values, (low, high))
        return (lo, hi) if hi > lo else (float(values.min()), float(values.max()))
    values = values.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    valid = values if finite.all() else values[finite]
    if valid.size == 0:
        return None
    lo, hi = np.percentile(valid, [low, high])
    if hi <= lo:
        lo, hi = valid.min(), valid.max()
    return float(lo), float(hi)


def scale_to_uint8(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``lo`` -> 0 and ``hi`` -> 255, linear, rounded and clipped; non-finite values 0; ``hi <= lo`` mid gray.

    8/16-bit counts are mapped through a lookup table of their possible values (the same formula per value)."""
    values = np.asarray(array)
    if values.dtype in (np.uint8, np.uint16) and values.size and hi > lo:
        table = scale_to_uint8(np.arange(int(values.max()) + 1, dtype=np.float64), lo, hi)
        return table[values]
    values = values.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if hi <= lo:
        return np.where(finite, np.uint8(128), np.uint8(0))
    if finite.all():
        scaled = (values - lo) * (255.0 / (hi - lo))
        return np.clip(np.rint(scaled, out=scaled), 0, 255, out=scaled).astype(np.uint8)
    out = np.zeros(values.shape, dtype=np.uint8)
    scaled = (values[finite] - lo) * (255.0 / (hi - lo))
    out[finite] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def to_uint8(array: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE) -> np.ndarray:
    """Robustly scale a high-bit-depth frame to 8 bits.

    The ``low`` and ``high`` percentiles of the finite values are mapped to 0 and 255 and the rest is clipped.
    When they coincide (a nearly flat frame) the minimum and maximum are used instead; a constant frame
    becomes mid gray (128). Non-finite values (NaN, inf) become 0.

    Args:
        array: A 2-D array of any real dtype.
        low: Lower percentile, in 0..100.
        high: Upper percentile, in 0..100.

    Returns:
        A uint8 array of the same shape.
    """
    bounds = percentile_bounds(array, low, high)
    if bounds is None:
        return np.zeros(np.shape(array), dtype=np.uint8)
    return scale_to_uint8(array, *bounds)


def _describe(source: object) -> str:
    if isinstance(source, np.ndarray):
        return f"array of shape {source.shape} and dtype {source.dtype}"
    if isinstance(source, Image.Image):
        return f"PIL image of mode {source.mode} and size {source.size}"
    return str(source)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an ``(H, W, 3)`` array; uint8 goes through PIL so the result equals ``convert("L")``."""
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))
    weights = np.array([0.299, 0.587, 0.114])
    return to_uint8(rgb.astype(np.float64) @ weights)


def narrow_to_8bit(array: np.ndarray) -> np.ndarray | None:
    """8-bit data stored in a wider integer container, as uint8; ``None`` when the data really is wider.

    Two layouts are recognised: every value below 256 (the 8-bit values as they are), or every value a
    multiple of 256 (the 8-bit values in the high byte).
    """
    if array.dtype.kind not in "iu" or array.dtype.itemsize == 1 or array.size == 0:
        return None
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi < 256:
        return array.astype(np.uint8)
    if lo >= 0 and hi < 65536 and not (array & 255).any():
        return (array >> 8).astype(np.uint8)
    return None


def _array_frame(array: np.ndarray, name: str) -> np.ndarray:
    """Channels resolved: uint8 gray for colour / MFNet / bool data, else the 2-D array as stored."""
    if array.size == 0:
        raise ValueError(f"{name}: empty array (shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name}: unsupported dtype {array.dtype} (expected bool, integer or float)")
    if array.ndim == 3:
        if array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
        channels = array.shape[-1]
        if channels == 1:
            array = array[..., 0]
        elif channels == 3:
            return _luma(array)
        elif channels == 4:
            if array.dtype == np.uint8 and array[..., 3].min() == 255:  # opaque RGBA picture, not RGB + thermal
                return _luma(array[..., :3])
            array = array[..., 3]  # MFNet: R, G, B, thermal
        else:
            raise ValueError(f"{name}: {channels} channels, expected 1, 3 (RGB) or 4 (RGB + thermal)")
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D frame or (H, W, C) with C in 1, 3, 4; got shape {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    return np.ascontiguousarray(array)


def _image_frame(image: Image.Image, name: str) -> np.ndarray:
    """A PIL image as stored: uint8 gray for 8-bit and colour modes, the raw array for high-depth modes."""
    mode = image.mode
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{name}: empty image (size {image.size})")
    if mode == "L":
        return np.asarray(image).copy()
    if mode == "LA":
        return np.asarray(image.getchannel(0)).copy()
    if mode in _HIGH_DEPTH_MODES:
        return np.asarray(image).copy()
    if mode == "RGBA":
        return _array_frame(np.asarray(image), name)
    if mode in _COLOUR_MODES:
        return np.asarray(image.convert("L")).copy()
    raise ValueError(f"{name}: unsupported PIL image mode {mode!r}")


def frame_to_gray(frame: np.ndarray) -> np.ndarray:
    """A 2-D frame as stored -> 8-bit gray: uint8 as is, 8-bit data in a 16-bit container narrowed, anything
    else scaled by :func:`to_uint8` (percentiles 0.5 / 99.5)."""
    if frame.dtype == np.uint8:
        return frame
    narrow = narrow_to_8bit(frame)
    return narrow if narrow is not None else to_uint8(frame)


def _open_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # no 90+ Mpx frame is a thermal image
            image = Image.open(path)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(f"{path}: refusing to decode, the header claims a huge image ({error}); if the file is "
                         "genuine, raise PIL.Image.MAX_IMAGE_PIXELS") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
        raise ValueError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error
    return image


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error


def read_frame(source: ThermalSource) -> np.ndarray:
    """Read an infrared frame as stored: ``(H, W)`` uint8 for 8-bit, colour and MFNet inputs, else the raw 2-D
    array (16/32-bit counts, float temperatures). Multi-frame files (TIFF stacks) give their first frame.

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: The file is empty, not an image, or has an unsupported shape, dtype or mode.
    """
    if isinstance(source, np.ndarray):
        return _array_frame(source, _describe(source))
    if isinstance(source, Image.Image):
        return _image_frame(source, _describe(source))
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"cannot read a thermal image from a {type(source).__name__}")
    path = Path(source)
    if path.suffix.lower() == ".npy":
        return _array_frame(_load_npy(path), str(path))
    with _open_image(path) as image:
        return _image_frame(image, str(path))


def read_thermal(source: ThermalSource) -> np.ndarray:
    """Read an infrared frame as 8-bit gray (:func:`read_frame`, then :func:`frame_to_gray`).

    Multi-frame files (TIFF stacks) give their first frame.

    Args:
        source: A file path (image or ``.npy``), a numpy array or a PIL image.

    Returns:
        A uint8 array of shape ``(H, W)``.

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: The file is empty, not an image, or has an unsupported shape, dtype or mode.
    """
    return frame_to_gray(read_frame(source))


def read_label(source: str | os.PathLike | np.ndarray) -> np.ndarray:
    """Read a label map of class indices.

    Palette PNGs give their indices (not their colours); gray and 16-bit PNGs give their values; RGB files are
    accepted only when the three channels are equal.

    Args:
        source: A label image path, a ``.npy`` path or an integer array.

    Returns:
        An ``(H, W)`` array, uint8 when every value fits in 0..255, int64 otherwise.

    Raises:
        ValueError: The file is not a label map (colour, float, wrong shape, not an image).
    """
    if isinstance(source, np.ndarray):
        name, array = _describe(source), source
    else:
        path = Path(source)
        name = str(path)
        if path.suffix.lower() == ".npy":
            array = _load_npy(path)
        else:
            with _open_image(path) as image:
                if image.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "RGB", "1"):
                    raise ValueError(f"{name}: label image mode {image.mode!r} does not hold class indices")
                array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] in (1, 3):
        if not (array == array[..., :1]).all():
            raise ValueError(f"{name}: colour label map; convert it to class indices (or a palette PNG) first")
        array = array[..., 0]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name}: expected an (H, W) label map, got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.round(array)):
            raise ValueError(f"{name}: float label map with non-integer values")
    elif array.dtype.kind not in "biu":
        raise ValueError(f"{name}: unsupported label dtype {array.dtype}")
    if array.min() >= 0 and array.max() <= 255:
        return array.astype(np.uint8)
    return array.astype(np.int64)
