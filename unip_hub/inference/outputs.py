"""Running a segmenter over image files and writing index masks, colour masks and overlays atomically.

Layout under the output folder, one PNG per input, named after the input's path relative to the input folder:
``masks/`` raw class indices (8-bit gray, 16-bit for more than 256 classes), ``color/`` the palette rendering,
``overlay/`` the rendering blended over the thermal image. Every file goes through
:func:`unip_hub.utils.atomic_path`, so an interrupted run never leaves a half-written PNG, and an input that
cannot be read (or segmented) leaves no file at all: its record carries the one-line ``error`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.constants import INPUT_EXTENSIONS
from unip_hub.inference.render import colorize, overlay, palette_array
from unip_hub.utils.atomic import atomic_path
from unip_hub.utils.files import list_files

KINDS = ("masks", "color", "overlay")


def list_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Image files under ``paths`` (files, or folders searched recursively) and their unique output names."""
    found: list[tuple[Path, Path]] = []  # (file, path relative to what the user named)
    for p in map(Path, paths):
        if p.is_dir():
            found += [(f, f.relative_to(p)) for f in list_files(p, INPUT_EXTENSIONS)]
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
    """Saves an (H, W) uint8/uint16 or (H, W, 3) uint8 array as PNG atomically."""
    from PIL import Image

    image = Image.fromarray(array, "I;16") if array.dtype == np.uint16 else Image.fromarray(array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def index_image(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices as an 8-bit (K <= 256) or 16-bit array ready for :func:`write_png_atomic`."""
    return mask.astype(np.uint8 if num_classes <= 256 else np.uint16)


def render(kind: str, gray: np.ndarray, mask: np.ndarray, colours: np.ndarray, num_classes: int,
           alpha: float = 0.5) -> np.ndarray:
    """The picture of one output ``kind`` (see :data:`KINDS`) for a gray frame and its class map."""
    if kind == "masks":
        return index_image(mask, num_classes)  # (H, W) class indices
    if kind == "color":
        return colorize(mask, colours)  # (H, W, 3)
    return overlay(gray, mask, colours, alpha)  # (H, W, 3)


def write_all_or_none(pictures: dict[str, np.ndarray], paths: dict[str, Path]) -> dict[str, str]:
    """Writes every picture atomically; if one write fails, the ones already written are removed again."""
    done: list[Path] = []
    try:
        for kind, picture in pictures.items():
            done.append(write_png_atomic(picture, paths[kind]))
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
    return {kind: str(path) for kind, path in zip(pictures, done)}


@dataclass
class SegmentSettings:
    """What :func:`segment_files` writes, besides how it infers (:class:`~unip_hub.models.slide.InferenceOptions`).

    Attributes:
        kinds: Outputs to write, a subset of :data:`KINDS`.
        alpha: Overlay opacity of the colour mask.
        progress: Show a progress bar.
    """

    kinds: Sequence[str] = field(default_factory=lambda: KINDS)
    alpha: float = 0.5
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown output kinds {sorted(unknown)}; choose from {KINDS}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


def segment_files(
    model: Any,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    settings: SegmentSettings | None = None,
    predictor: Any = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Segments every image under ``inputs`` with ``model`` (a :class:`~unip_hub.models.segmenter.Segmenter`).

    Args:
        model: The segmenter (its ``num_classes`` and ``palette`` choose the colours).
        inputs: Files and folders (searched recursively).
        out_dir: Output folder (``masks/``, ``color/``, ``overlay/`` under it).
        settings: Outputs, overlay opacity, progress bar.
        predictor: A :class:`~unip_hub.inference.Predictor` to use (another runtime); ``Predictor(model)`` if None.
        **options: :class:`~unip_hub.models.slide.InferenceOptions` fields (``mode``, ``crop_size``, ``stride``,
            ``batch_windows``, ``scale``).

    Returns:
        One record per input: ``input``, and ``size`` (H, W) plus the written path of each kind, or ``error``
        (a one-line message naming the file) when the input could not be read; nothing is written for it.
    """
    from tqdm.auto import tqdm

    from unip_hub.inference.predictor import Predictor
    from unip_hub.models.slide import InferenceOptions

    settings = settings or SegmentSettings()
    inference = InferenceOptions(**options)
    predictor = predictor or Predictor(model)
    files, names = list_inputs(inputs)
    colours = palette_array(model.num_classes, model.palette)
    records = []
    for path, name in tqdm(list(zip(files, names)), desc="segment", unit="img", disable=not settings.progress):
        try:
            gray = predictor.read(path)  # (H, W) uint8 from any supported format
        except (ValueError, OSError) as error:
            records.append({"input": str(path), "error": str(error)})
            continue
        mask = predictor.predict(gray, inference).numpy()  # (H, W) int64
        pictures = {k: render(k, gray, mask, colours, model.num_classes, settings.alpha) for k in settings.kinds}
        targets = {k: Path(out_dir) / k / f"{name}.png" for k in settings.kinds}
        records.append({"input": str(path), "size": list(mask.shape), **write_all_or_none(pictures, targets)})
    return records


def segment_paths(model_path: str | os.PathLike, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                  load: dict[str, Any] | None = None, device: str = "cpu", settings: SegmentSettings | None = None,
                  **options: Any) -> tuple[Any, list[dict[str, Any]]]:
    """``unip segment``: loads a segmenter checkpoint and runs :func:`segment_files`.

    Args:
        model_path: Our checkpoint (``.pth`` / ``.safetensors`` / HF folder) or an mmseg one.
        inputs: Files and folders.
        out_dir: Output folder.
        load: Keywords of :func:`unip_hub.load_segmenter` (``arch``, ``num_classes``, ``head``, ``neck``) for files
            that do not say them.
        device: Torch device.
        settings: See :func:`segment_files`.
        **options: :class:`~unip_hub.models.slide.InferenceOptions` fields.

    Returns:
        The loaded model (eval mode) and the records of :func:`segment_files`.
    """
    import torch

    from unip_hub.hub.segmenters import load_segmenter

    model = load_segmenter(model_path, **{**(load or {}), "aux": False}).to(torch.device(device)).eval()
    return model, segment_files(model, inputs, out_dir, settings, **options)
