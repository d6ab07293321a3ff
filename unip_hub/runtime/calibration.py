"""Calibration frames of an int8 build: thermal images, normalised as the model sees them.

The same frames set the activation ranges of the statically quantised convolutions and are the frames on which
the quantised model must agree with fp32 torch before it is accepted (:mod:`unip_hub.runtime.agreement`). Given
files (any format of :func:`unip_hub.data.read_thermal`) or, by default, synthetic LWIR street scenes
(:func:`unip_hub.data.synthetic.make_scene`), which also carry labels for an mIoU.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from unip_hub.constants import INPUT_EXTENSIONS, PRETRAIN_MEAN, PRETRAIN_STD

DEFAULT_FRAMES = 8
DEFAULT_SIZE = (256, 320)


@dataclass
class CalibrationSet:
    """Normalised frames (each (1, C_in, H, W)), optional labels (H, W) and a digest naming the set in cache keys."""

    frames: list[torch.Tensor]
    labels: list[np.ndarray] | None = None
    digest: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)


def _stats(model: nn.Module) -> tuple[float, float, int]:
    """(mean, std) on the 0-255 scale and the input channels: a segmenter's own, else the pre-training ones."""
    in_chans = model.backbone.in_chans if hasattr(model, "backbone") else model.in_chans
    if hasattr(model, "mean") and hasattr(model, "std"):
        return float(model.mean), float(model.std), in_chans
    return PRETRAIN_MEAN * 255, PRETRAIN_STD * 255, in_chans


def _digest(grays: Iterable[np.ndarray]) -> str:
    h = hashlib.sha256()
    for g in grays:
        h.update(f"{g.shape}".encode())
        h.update(np.ascontiguousarray(g).tobytes())
    return h.hexdigest()


def _normalise(grays: list[np.ndarray], model: nn.Module) -> list[torch.Tensor]:
    from unip_hub.data.transforms import normalize

    mean, std, c = _stats(model)
    return [normalize(g, mean, std, c)[None] for g in grays]  # (1, C_in, H, W) each


def synthetic_calibration(model: nn.Module, frames: int = DEFAULT_FRAMES, size: tuple[int, int] = DEFAULT_SIZE,
                          seed: int = 1234) -> CalibrationSet:
    """``frames`` synthetic street scenes of ``size`` (H, W) with their labels (seeded: the same set every time)."""
    from unip_hub.data.synthetic import make_scene

    rng = np.random.default_rng(seed)
    scenes = [make_scene(size[0], size[1], rng) for _ in range(frames)]
    grays = [g for g, _ in scenes]
    return CalibrationSet(_normalise(grays, model), [lab.astype(np.int64) for _, lab in scenes], _digest(grays),
                          f"synthetic:{frames}x{size[0]}x{size[1]}:seed{seed}")


def model_gray(model: nn.Module, path: str | os.PathLike) -> np.ndarray:
    """A file as the 8-bit gray (H, W) ``model`` sees: a segmenter's own input scaling and counts calibration (as
    its predictor, ``unip eval`` and ``unip segment`` read it), the default scaling for a backbone."""
    from unip_hub.data.radiometric import read_radiometric
    from unip_hub.data.scaling import model_reading

    scaling, calibration = model_reading(model)
    return scaling.to_gray(read_radiometric(path, calibration))


def file_calibration(model: nn.Module, paths: str | os.PathLike | Iterable[str | os.PathLike],
                     limit: int | None = 32) -> CalibrationSet:
    """Frames read from image files / folders (at most ``limit``) as ``model`` sees them (:func:`model_gray`),
    normalised for it; no labels.

    Raises:
        ValueError: No readable image was found under ``paths``.
    """
    from unip_hub.utils.files import list_files

    files = list_files(paths, INPUT_EXTENSIONS, limit=limit)
    if not files:
        raise ValueError(f"no calibration images ({', '.join(INPUT_EXTENSIONS)}) found in {paths}; give a folder "
                         "of thermal frames or leave calibration out (synthetic scenes)")
    grays = [model_gray(model, f) for f in files]
    return CalibrationSet(_normalise(grays, model), None, _digest(grays), f"files:{len(files)}")


def calibration_set(model: nn.Module, source: str | os.PathLike | CalibrationSet | None = None) -> CalibrationSet:
    """``source`` as a :class:`CalibrationSet`: ``None`` = synthetic scenes, a path = files, a set = itself."""
    if isinstance(source, CalibrationSet):
        return source
    if source is None:
        return synthetic_calibration(model)
    return file_calibration(model, source)
