"""Accuracy of every runtime path of a trained segmenter against fp32 torch (``unip benchmark --accuracy-model``).

Per path (ONNX Runtime fp32 / int8, torch bf16) and mode (whole / slide), on a labelled test set: the largest
logit difference, the pixel agreement of the masks and the mIoU of both, from
:func:`unip_hub.runtime.compare_outputs`. The test set is a folder with ``images/`` and ``labels/`` (the layout
``unip demo`` writes under ``data/``; ``images/test`` and ``labels/test`` are used when present) or, by default,
seeded synthetic scenes that the int8 calibration (another seed) never saw.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unip_hub.constants import IMAGE_EXTENSIONS, SLIDE_CROP, SLIDE_STRIDE


def _test_folders(root: Path) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    if (images / "test").is_dir() and (labels / "test").is_dir():
        return images / "test", labels / "test"
    if images.is_dir() and labels.is_dir():
        return images, labels
    raise ValueError(f"{root} has no images/ and labels/ folders (the layout unip demo writes under data/); give "
                     "such a folder or leave --accuracy-data out (synthetic scenes)")


def labelled_set(seg: Any, data: str | os.PathLike | None, frames: int = 16,
                 size: tuple[int, int] = (256, 320)) -> tuple[list[torch.Tensor], list[np.ndarray], str]:
    """(normalised frames (1, C_in, H, W), labels (H, W), description) of every test image of ``data`` (read as
    the segmenter reads them: its input scaling and counts calibration; at their own size) or of ``frames``
    synthetic scenes of ``size``."""
    from unip_hub.runtime.calibration import file_calibration, synthetic_calibration

    if data is None:
        calib = synthetic_calibration(seg, frames, size, seed=2025)
        return calib.frames, calib.labels, calib.source
    from unip_hub.data.readers import read_label
    from unip_hub.utils.files import list_files

    images, labels = _test_folders(Path(data))
    files = list_files(images, IMAGE_EXTENSIONS)
    label_files = [next(iter(sorted(labels.glob(f.stem + ".*"))), None) for f in files]
    if not files or None in label_files:
        raise ValueError(f"{images}: every image needs a label of the same name in {labels}")
    calib = file_calibration(seg, files, limit=None)
    return calib.frames, [read_label(p).astype(np.int64) for p in label_files], f"{images} ({len(files)} images)"


def _modes(fn: Any, seg: Any, modes: Sequence[str]) -> dict[str, Any]:
    from unip_hub.models.slide import slide_logits

    out = {}
    for mode in modes:
        out[mode] = fn if mode == "whole" else (
            lambda t, f=fn: slide_logits(f, t, seg.num_classes, SLIDE_CROP, SLIDE_STRIDE, 1))
    return out


def runtime_accuracy(checkpoint: str | os.PathLike, pairs: Sequence[tuple[str, str]], data: str | os.PathLike |
                     None = None, cache_dir: str | os.PathLike | None = None, frames: int = 16,
                     modes: Sequence[str] = ("whole", "slide")) -> dict[str, Any]:
    """The accuracy of every (runtime, precision) in ``pairs`` against fp32 torch, per mode (see the module), on
    every test image of ``data`` or on ``frames`` synthetic scenes."""
    from unip_hub.hub.segmenters import load_segmenter
    from unip_hub.runtime import compare_outputs, load_runtime

    seg = load_segmenter(checkpoint, aux=False).eval()
    images, labels, source = labelled_set(seg, data, frames)
    reference = _modes(load_runtime(seg), seg, modes)
    paths: dict[str, Any] = {}
    for runtime, precision in pairs:
        run = load_runtime(seg, runtime, precision, cache_dir=cache_dir, checkpoint=checkpoint, min_agreement=0.0,
                           progress=True)
        for mode, fn in _modes(run, seg, modes).items():
            report = compare_outputs(reference[mode], fn, images, labels, seg.num_classes)
            paths[f"{runtime}-{precision}/{mode}"] = report | {"calibration": run.info.accuracy or None}
    return {"checkpoint": str(checkpoint), "test_set": source, "num_classes": seg.num_classes, "paths": paths}


def format_accuracy(acc: dict[str, Any]) -> str:
    """The accuracy section as text lines."""
    lines = [f"accuracy vs fp32 torch: {acc['checkpoint']} on {acc['test_set']}"]
    for name, r in acc["paths"].items():
        miou = "" if "mIoU" not in r else (f", mIoU {100 * r['mIoU']:.2f} (fp32 torch {100 * r['mIoU_reference']:.2f},"
                                           f" drop {r['mIoU_drop_points']:.2f} points)")
        lines.append(f"  {name}: max |logit diff| {r['max_abs_diff']:.3g}, mask agreement "
                     f"{100 * r['mask_agreement']:.2f} %{miou}")
    return "\n".join(lines)
