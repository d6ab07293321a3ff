"""Evaluation of a segmenter on a labelled dataset: whole or sliding-window inference, mmseg's mIoU / mAcc / aAcc.

Each image is predicted at its own size (optionally rescaled to fit ``scale`` first, UNIP's (2048, 512), with the
logits resized back), compared with its label at the label's size, and the per-class intersection / union are
summed over the whole dataset (:class:`unip_hub.metrics.SegMetric`) -- never averaged per image. Under
``torchrun`` each process takes every ``world``-th image and the counts are summed across processes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from unip_hub.metrics import SegMetric, to_json
from unip_hub.train.dist import get_rank, get_world_size, is_main_process

MODES = ("whole", "slide")


@torch.no_grad()
def evaluate(
    segmenter: nn.Module,
    dataset: Dataset,
    mode: str = "whole",
    crop_size: int = 512,
    stride: int = 341,
    scale: tuple[int, int] | None = None,
    batch_windows: int = 4,
    num_workers: int = 0,
    ignore_index: int = 255,
    progress: bool = True,
) -> dict[str, Any]:
    """mIoU, mAcc, aAcc and per-class IoU / Acc of ``segmenter`` on ``dataset``.

    Args:
        segmenter: A :class:`~unip_hub.models.segmenter.Segmenter` (not wrapped in DDP).
        dataset: Items ``(image (3, H, W) normalised, label (h, w))``; a label of another size than the image
            gets the logits resized to it (bilinear), as mmseg compares at the original resolution.
        mode: ``"whole"`` or ``"slide"`` (windows of ``crop_size`` every ``stride`` pixels, logits averaged).
        crop_size: Sliding-window side.
        stride: Sliding-window step.
        scale: ``(long, short)`` edge each image is fitted to before inference, or None for its native size.
        batch_windows: Windows per forward pass in ``"slide"`` mode.
        num_workers: DataLoader workers reading the images.
        ignore_index: Label value left out.
        progress: Show a tqdm bar on the main process.

    Returns:
        :meth:`SegMetric.compute`'s dict (``aAcc``, ``mIoU``, ``mAcc``, ``IoU``, ``Acc``, areas; fractions in 0..1)
        plus ``mode`` and ``num_images``.
    """
    from tqdm.auto import tqdm

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    k = segmenter.num_classes
    ds_classes = getattr(dataset, "num_classes", None)
    if ds_classes and ds_classes != k:
        raise ValueError(f"the dataset has {ds_classes} classes but the segmenter predicts {k}; use a checkpoint "
                         "trained on this dataset (or pass the right --num-classes)")
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty")
    shard = Subset(dataset, range(get_rank(), len(dataset), get_world_size()))
    loader = DataLoader(shard, batch_size=1, num_workers=num_workers)
    metric = SegMetric(k, ignore_index)
    was_training = segmenter.training
    segmenter.eval()
    try:
        for image, label in tqdm(loader, desc=f"eval ({mode})", dynamic_ncols=True,
                                 disable=not (progress and is_main_process())):
            logits = segmenter.predict_logits(image.float(), mode=mode, crop_size=crop_size, stride=stride,
                                              batch_windows=batch_windows, scale=scale)  # (1, K, H, W)
            if tuple(logits.shape[-2:]) != tuple(label.shape[-2:]):
                logits = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
            metric.update(logits.argmax(dim=1).cpu(), label)  # (1, h, w) vs (1, h, w)
    finally:
        segmenter.train(was_training)
    metric.all_reduce()
    return {**metric.compute(), "mode": mode, "num_images": len(dataset)}


def summary_line(result: dict[str, Any]) -> str:
    """``mIoU 61.23 | mAcc 70.01 | aAcc 90.00`` (percent)."""
    return " | ".join(f"{key} {100 * result[key]:.2f}" for key in ("mIoU", "mAcc", "aAcc"))


def save_results(result: dict[str, Any], path: str | Path, class_names: list[str] | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Writes ``result`` (and ``extra`` fields such as the checkpoint path) as JSON, atomically."""
    from unip_hub.train.checkpointing import atomic_write_text

    out = json.loads(to_json(result, class_names))
    out.update(extra or {})
    return atomic_write_text(json.dumps(out, indent=2), path)

