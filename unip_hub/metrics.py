"""Semantic-segmentation metrics as mmseg computes them (the numbers UNIP reports, reference section 4).

Per class, intersection, union, predicted area and labelled area are summed over the whole dataset (pixels
labelled ``ignore_index`` left out; values outside ``0..num_classes-1`` are not counted, like ``torch.histc``),
then IoU = intersection / union and Acc = intersection / labelled area per class. mIoU and mAcc are the NaN-mean
over classes: a class absent from both the labels and the predictions has IoU 0/0 = NaN and is skipped.
aAcc = all correct pixels / all labelled pixels. All values are fractions in 0..1 (tables print percentages).

:class:`SegMetric` accumulates the four counts; ``merge`` and ``all_reduce`` combine counts across workers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["SegMetric", "format_table", "intersect_and_union", "to_json"]


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _count(values: torch.Tensor, num_classes: int) -> torch.Tensor:
    values = values[(values >= 0) & (values < num_classes)]
    return torch.bincount(values, minlength=num_classes)[:num_classes]


def intersect_and_union(
    pred: torch.Tensor | np.ndarray, label: torch.Tensor | np.ndarray, num_classes: int, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class pixel counts of one prediction against its label (mmseg's ``intersect_and_union``).

    Args:
        pred: Predicted class indices, any shape; or logits with one more dimension than ``label``, the class
            dimension third from last (``(C, H, W)`` or ``(B, C, H, W)``), reduced by argmax.
        label: Class indices of the same shape as the (reduced) prediction.
        num_classes: Number of classes.
        ignore_index: Label value left out.

    Returns:
        int64 tensors ``(num_classes,)``: intersection, union, predicted area, labelled area.
    """
    pred, label = _as_tensor(pred), _as_tensor(label)
    if pred.ndim == label.ndim + 1:
        pred = pred.argmax(dim=-3)  # (..., C, H, W) -> (..., H, W)
    if pred.shape != label.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} and label shape {tuple(label.shape)} differ")
    pred, label = pred.reshape(-1).long().cpu(), label.reshape(-1).long().cpu()
    keep = label != ignore_index
    pred, label = pred[keep], label[keep]
    area_intersect = _count(pred[pred == label], num_classes)
    area_pred = _count(pred, num_classes)
    area_label = _count(label, num_classes)
    return area_intersect, area_pred + area_label - area_intersect, area_pred, area_label


def _divide(numerator: torch.Tensor, denominator: torch.Tensor) -> list[float]:
    return [n / d if d > 0 else math.nan for n, d in zip(numerator.tolist(), denominator.tolist())]


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


class SegMetric:
    """Dataset-wide mIoU accumulator.

    Args:
        num_classes: Number of classes.
        ignore_index: Label value left out of every count.

    Example:
        >>> metric = SegMetric(num_classes=3)
        >>> metric.update(torch.tensor([[0, 1], [2, 2]]), torch.tensor([[0, 1], [2, 255]]))
        >>> metric.compute()["mIoU"]
        1.0
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.counts = torch.zeros(4, self.num_classes, dtype=torch.int64)  # intersect, union, pred, label

    def update(self, pred: torch.Tensor | np.ndarray, label: torch.Tensor | np.ndarray) -> None:
        """Add one prediction (or a batch) and its label; see :func:`intersect_and_union` for the shapes."""
        self.counts += torch.stack(intersect_and_union(pred, label, self.num_classes, self.ignore_index))

    def merge(self, other: SegMetric) -> SegMetric:
        """Add the counts of another accumulator (e.g. another worker's) to this one, in place."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.counts += other.counts
        return self

    def all_reduce(self) -> SegMetric:
        """Sum the counts over all processes when ``torch.distributed`` is initialised (no-op otherwise)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            counts = self.counts.to(device)
            dist.all_reduce(counts, op=dist.ReduceOp.SUM)
            self.counts = counts.cpu()
        return self

    def compute(self) -> dict[str, Any]:
        """The metrics of everything accumulated.

        Returns:
            ``aAcc``, ``mIoU``, ``mAcc`` (floats in 0..1, NaN when nothing was labelled), ``IoU`` and ``Acc``
            (lists of per-class floats, NaN for a class absent from labels and predictions) and the raw
            per-class counts ``area_intersect``, ``area_union``, ``area_pred``, ``area_label`` (lists of ints).
        """
        intersect, union, pred, label = self.counts
        iou, acc = _divide(intersect, union), _divide(intersect, label)
        total = int(label.sum())
        return {
            "aAcc": int(intersect.sum()) / total if total else math.nan,
            "mIoU": _nanmean(iou),
            "mAcc": _nanmean(acc),
            "IoU": iou,
            "Acc": acc,
            "area_intersect": intersect.tolist(),
            "area_union": union.tolist(),
            "area_pred": pred.tolist(),
            "area_label": label.tolist(),
        }


def _pct(value: float) -> str:
    return "nan" if math.isnan(value) else f"{100 * value:.2f}"


def format_table(result: dict[str, Any], class_names: Sequence[str] | None = None) -> str:
    """A plain-text table of per-class IoU/Acc and the summary, in percent (as mmseg prints it).

    Args:
        result: Output of :meth:`SegMetric.compute`.
        class_names: One name per class; indices are used when None.
    """
    iou, acc = result["IoU"], result["Acc"]
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(iou))]
    if len(names) != len(iou):
        raise ValueError(f"{len(names)} class names for {len(iou)} classes")
    width = max([len("Class"), *(len(n) for n in names)])
    lines = [f"{'Class':<{width}} | {'IoU':>6} | {'Acc':>6}", f"{'-' * width}-+-{'-' * 6}-+-{'-' * 6}"]
    lines += [f"{n:<{width}} | {_pct(i):>6} | {_pct(a):>6}" for n, i, a in zip(names, iou, acc)]
    lines += ["", f"aAcc {_pct(result['aAcc'])} | mIoU {_pct(result['mIoU'])} | mAcc {_pct(result['mAcc'])}"]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(result: dict[str, Any], class_names: Sequence[str] | None = None, indent: int | None = 2) -> str:
    """The result as standard JSON (NaN written as ``null``), with per-class values keyed by class name.

    Args:
        result: Output of :meth:`SegMetric.compute`.
        class_names: One name per class; when given, ``per_class`` maps each name to its IoU and Acc.
        indent: JSON indentation.
    """
    out = {key: _jsonable(value) for key, value in result.items()}
    if class_names is not None:
        if len(class_names) != len(result["IoU"]):
            raise ValueError(f"{len(class_names)} class names for {len(result['IoU'])} classes")
        out["classes"] = list(class_names)
        out["per_class"] = {
            name: {"IoU": _jsonable(i), "Acc": _jsonable(a)}
            for name, i, a in zip(class_names, result["IoU"], result["Acc"])
        }
    return json.dumps(out, indent=indent, allow_nan=False)
