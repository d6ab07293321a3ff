"""What a runtime costs in accuracy, measured against fp32 torch on the same inputs.

Per path: the largest logit (or token) difference, the pixel agreement of the class masks (argmax over classes)
and, with labels, the mIoU of both (:class:`unip_hub.metrics.SegMetric`, as mmseg computes it) and its drop in
points. :func:`check_agreement` refuses a quantised model whose mask agreement is under the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

DEFAULT_MIN_AGREEMENT = 0.99

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


class AccuracyError(RuntimeError):
    """A quantised model disagrees with fp32 torch on more pixels than the threshold allows."""


def _miou(masks: Sequence[torch.Tensor], labels: Sequence[np.ndarray], num_classes: int) -> float:
    from unip_hub.metrics import SegMetric

    metric = SegMetric(num_classes)
    for m, lab in zip(masks, labels):
        metric.update(m, torch.from_numpy(np.asarray(lab)))
    return float(metric.compute()["mIoU"])


def compare_outputs(reference: LogitsFn, candidate: LogitsFn, frames: Sequence[torch.Tensor],
                    labels: Sequence[np.ndarray] | None = None, num_classes: int | None = None) -> dict[str, Any]:
    """Agreement of ``candidate`` with ``reference`` on ``frames`` (each (1, C_in, H, W)).

    Returns:
        ``max_abs_diff``; for logits (B, K, H, W) also ``mask_agreement`` (fraction of pixels with the same class
        over all frames) and, with ``labels`` (class indices < ``num_classes``), ``mIoU_reference``,
        ``mIoU`` and ``mIoU_drop_points`` (100 x (reference - candidate)).
    """
    diff, same, total = 0.0, 0, 0
    ref_masks, masks = [], []
    for x in frames:
        ref, out = reference(x).float(), candidate(x).float()
        diff = max(diff, float((ref - out).abs().max()))
        if ref.ndim == 4:  # logits -> masks (H, W)
            ref_masks.append(ref.argmax(1)[0].cpu())
            masks.append(out.argmax(1)[0].cpu())
            same += int((ref_masks[-1] == masks[-1]).sum())
            total += masks[-1].numel()
    report: dict[str, Any] = {"frames": len(frames), "max_abs_diff": diff}
    if total:
        report["mask_agreement"] = same / total
    if total and labels is not None and num_classes and max(int(np.max(lab)) for lab in labels) < num_classes:
        report["mIoU_reference"] = _miou(ref_masks, labels, num_classes)
        report["mIoU"] = _miou(masks, labels, num_classes)
        report["mIoU_drop_points"] = 100 * (report["mIoU_reference"] - report["mIoU"])
    return report


def check_agreement(report: dict[str, Any], min_agreement: float, what: str) -> None:
    """Raises :class:`AccuracyError` when ``report["mask_agreement"]`` is below ``min_agreement``."""
    agreement = report.get("mask_agreement")
    if agreement is not None and agreement < min_agreement:
        raise AccuracyError(
            f"{what} agrees with fp32 torch on {100 * agreement:.2f} % of the pixels of {report['frames']} "
            f"calibration frame(s), below the required {100 * min_agreement:.2f} %; refusing it. Use precision "
            "fp32, calibrate on frames like yours (--calibration-frames DIR), or lower --min-agreement")
