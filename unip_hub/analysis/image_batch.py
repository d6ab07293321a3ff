"""Images for attention analysis: any folder of infrared (or RGB) pictures as a normalised gray batch.

Each image is read as 8-bit gray (:func:`unip_hub.data.readers.read_thermal`: ITU-R 601 luma for colour files,
robust scaling for 16-bit radiometric frames), resized to a square with bicubic interpolation, copied to three
channels and normalised with the pre-training statistics (mean 0.3801, std 0.1871) -- the input every teacher and
student sees during NMI-HAD.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unip_hub.constants import INPUT_EXTENSIONS, PATCH_SIZE, PRETRAIN_MEAN, PRETRAIN_STD
from unip_hub.utils.files import list_files


def list_images(folder: str | os.PathLike, max_images: int | None = None) -> list[Path]:
    """Image files (and ``.npy`` frames) under ``folder`` (recursive, sorted), at most ``max_images``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = list_files(folder, INPUT_EXTENSIONS, limit=max_images or None)
    if not files:
        raise ValueError(f"no images ({', '.join(INPUT_EXTENSIONS)}) under {folder}")
    return files


def load_gray_batch(files: list[Path], size: int = 224, mean: float | None = None, std: float | None = None
                    ) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Reads ``files`` as a normalised batch (B, 3, size, size) and the resized uint8 gray images shown in plots."""
    from unip_hub.data.readers import read_thermal

    if size % PATCH_SIZE:
        raise ValueError(f"image size {size} must be a multiple of the patch size {PATCH_SIZE}")
    mean = PRETRAIN_MEAN if mean is None else mean
    std = PRETRAIN_STD if std is None else std
    grays, tensors = [], []
    for f in files:
        gray = np.asarray(Image.fromarray(read_thermal(f)).resize((size, size), Image.BICUBIC))  # (S, S) uint8
        grays.append(gray)
        t = (torch.from_numpy(gray.astype(np.float32) / 255.0) - mean) / std  # (S, S)
        tensors.append(t.expand(3, -1, -1))  # (3, S, S)
    return torch.stack(tensors), grays
