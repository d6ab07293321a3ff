"""Running a segmenter over image files and writing index masks, colour masks and overlays atomically.

Layout under the output folder, one PNG per input, named after the input's path relative to the input folder:
``masks/`` raw class indices (8-bit gray, 16-bit for more than 256 classes), ``color/`` the palette rendering,
``overlay/`` the rendering blended over the thermal image. Every file is written to a temporary file in the
same folder and moved into place, so an interrupted run never leaves a half-written PNG.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.inference.render import colorize, overlay, palette_array

INPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
KINDS = ("masks", "color", "overlay")


def list_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Image files under ``paths`` (files, or folders searched recursively) and their unique output names."""
    found: list[tuple[Path, Path]] = []  # (file, path relative to what the user named)
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in INPUT_EXTENSIONS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            found += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            found.append((p, Path(p.name)))
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    if not found:
        raise ValueError(f"no images ({', '.join(INPUT_EXTENSIONS)}) found in {[str(p) for p in paths]}")
    stems = [rel.with_suffix("").as_posix() for _, rel in found]
    clash = {s for s in stems if stems.count(s) > 1}
    names = [rel.as_posix() if s in clash else s for s, (_, rel) in zip(stems, found)]  # a.png + a.npy -> keep suffix
    if len(set(names)) != len(names):
        raise ValueError("two inputs would write the same output file; pass them in separate runs")
    return [f for f, _ in found], names


def write_png_atomic(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Saves an (H, W) uint8/uint16 or (H, W, 3) uint8 array as PNG through a temporary file + ``os.replace``."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array, "I;16") if array.dtype == np.uint16 else Image.fromarray(array)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def index_image(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices as an 8-bit (K <= 256) or 16-bit array ready for :func:`write_png_atomic`."""
    return mask.astype(np.uint8 if num_classes <= 256 else np.uint16)


def segment_files(
    model: Any,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    mode: str = "whole",
    crop_size: int = 512,
    stride: int = 341,
    batch_windows: int = 4,
    scale: tuple[int, int] | None = None,
    alpha: float = 0.5,
    kinds: Sequence[str] = KINDS,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Segments every image under ``inputs`` with ``model`` (a :class:`~unip_hub.models.segmenter.Segmenter`).

    Returns:
        One record per input: ``input``, ``size`` (H, W), and the written path of each kind.
    """
    from tqdm.auto import tqdm

    from unip_hub.data.readers import read_thermal

    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown output kinds {sorted(unknown)}; choose from {KINDS}")
    files, names = list_inputs(inputs)
    out_dir = Path(out_dir)
    colours = palette_array(model.num_classes, model.palette)
    records = []
    for path, name in tqdm(list(zip(files, names)), desc="segment", unit="img", disable=not progress):
        gray = read_thermal(path)  # (H, W) uint8 from any supported format
        mask = model.predict(gray, mode=mode, crop_size=crop_size, stride=stride, batch_windows=batch_windows,
                             scale=scale).numpy()  # (H, W) int64
        record: dict[str, Any] = {"input": str(path), "size": list(mask.shape)}
        for kind in kinds:
            if kind == "masks":
                picture = index_image(mask, model.num_classes)  # (H, W) class indices
            elif kind == "color":
                picture = colorize(mask, colours)  # (H, W, 3)
            else:
                picture = overlay(gray, mask, colours, alpha)  # (H, W, 3)
            record[kind] = str(write_png_atomic(picture, out_dir / kind / f"{name}.png"))
        records.append(record)
    return records
