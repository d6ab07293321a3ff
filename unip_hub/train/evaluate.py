"""Evaluation of a segmenter on a labelled dataset: whole or sliding-window inference, mmseg's mIoU / mAcc / aAcc.

Each image is predicted at its own size (optionally rescaled to fit ``scale`` first, UNIP's (2048, 512), with the
logits resized back), compared with its label at the label's size, and the per-class intersection / union are
summed over the whole dataset (:class:`unip_hub.metrics.SegMetric`) -- never averaged per image. Under
``torchrun`` each process takes every ``world``-th image and the counts are summed across processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from unip_hub.constants import SLIDE_CROP, SLIDE_STRIDE
from unip_hub.metrics import SegMetric, to_json
from unip_hub.train.dist import get_rank, get_world_size, is_main_process
from unip_hub.utils.atomic import write_text_atomic

MODES = ("whole", "slide")


@torch.no_grad()
def evaluate(
    segmenter: nn.Module,
    dataset: Dataset,
    mode: str = "whole",
    crop_size: int = SLIDE_CROP,
    stride: int = SLIDE_STRIDE,
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
    out = json.loads(to_json(result, class_names))
    out.update(extra or {})
    return write_text_atomic(json.dumps(out, indent=2), path)


def evaluate_checkpoint(checkpoint: str | Path, dataset: str, data_root: str | None = None, *,
                        classes: str | None = None, split: str = "test", mode: str = "slide",
                        crop_size: int | None = None, stride: int | None = None, scale: tuple[int, int] | None = None,
                        native: bool = False, batch_windows: int = 4, out: str | Path | None = None,
                        device: str = "auto", num_workers: int = 2, seed: int = 0,
                        synthetic_size: tuple[int, int] | None = None, progress: bool = True,
                        counts_to_celsius: tuple[float, float] | None = None) -> dict[str, Any]:
    """``unip eval``: loads a segmenter checkpoint, evaluates it on a dataset split, prints the per-class table.

    The images are read with the checkpoint's own input-scaling spec (meta ``input_scaling``; older and mmseg
    files: ``percentile 0.5/99.5``), as in fine-tuning and ``unip segment``; 16-bit count images with its
    ``counts_to_celsius`` calibration unless one is given.

    Args:
        checkpoint: ``best.pth`` / ``last.pth`` of ``unip finetune``, a ``.safetensors`` file or an mmseg checkpoint.
        dataset: A name of :data:`unip_hub.data.presets.DATASETS`.
        data_root: The dataset folder.
        classes: Folder datasets: class names (comma-separated) or a file with one per line.
        split: The split to evaluate.
        mode: ``slide`` or ``whole``.
        crop_size: Window side (default: the checkpoint's training crop, else 512).
        stride: Window step (default 2/3 of the crop).
        scale: ``(long, short)`` edges to fit images to (default ``(4 x crop, crop)``).
        native: No rescaling: infer at each image's own size.
        batch_windows: Sliding windows per forward pass.
        out: Also write the results as JSON here.
        device: ``auto``, ``cpu`` or ``cuda``.
        num_workers: DataLoader workers.
        seed: Synthetic dataset: the seed of the run it was trained with.
        synthetic_size: Synthetic dataset: scene size (H, W).
        progress: Show a progress bar.
        counts_to_celsius: ``(gain, offset)`` of 16-bit count images (default: the checkpoint's, if any).

    Returns:
        :func:`evaluate`'s dict.
    """
    from unip_hub.data.radiometric import Calibration
    from unip_hub.data.scaling import model_reading
    from unip_hub.hub.segmenters import load_segmenter
    from unip_hub.train.finetune_config import FinetuneConfig
    from unip_hub.train.finetune_data import build_dataset

    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    seg = load_segmenter(checkpoint).to(device).eval()
    crop = crop_size or int(seg.config.get("img_size") or SLIDE_CROP)
    given = Calibration(counts_to_celsius=tuple(counts_to_celsius) if counts_to_celsius else None)
    scaling, calibration = model_reading(seg, calibration=given)  # its training spec; counts given, else stored
    counts = calibration.counts_to_celsius
    cfg = FinetuneConfig(dataset=dataset, data_root=data_root, classes=classes, test_split=split, crop_size=crop,
                         seed=seed, input_scaling=str(scaling), counts_to_celsius=counts)
    if dataset == "synthetic" and synthetic_size:
        cfg.synthetic_size = tuple(synthetic_size)
    cfg = cfg.resolved()
    data = build_dataset(cfg, "test")
    scale = None if native else (tuple(scale) if scale else cfg.scale)
    stride = stride or round(crop * 2 / 3)
    result = evaluate(seg, data, mode, crop, stride, scale, batch_windows=batch_windows, num_workers=num_workers,
                      progress=progress)
    _report(result, list(data.CLASSES), out, {"checkpoint": str(checkpoint), "dataset": dataset, "split": split,
                                              "crop_size": crop, "stride": stride, "input_scaling": str(scaling),
                                              "counts_to_celsius": list(cfg.counts_to_celsius or []) or None,
                                              "scale": list(scale) if scale else None})
    return result


def _report(result: dict[str, Any], names: list[str], out: str | Path | None, extra: dict[str, Any]) -> None:
    """Prints the per-class table (and the summary line on stderr); writes the JSON when ``out`` is given."""
    from unip_hub.metrics import format_table

    print(format_table(result, names))
    if out:
        save_results(result, out, names, extra)
        print(f"saved {out}")
    print(summary_line(result), file=sys.stderr)

