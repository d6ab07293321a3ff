# exports: COCO_STATS, DetectionEvaluator, coco_evaluate, log_average_miss_rate, miss_rate_curve, results_json
"""Detection metrics: COCO AP through ``faster-coco-eval`` and the pedestrian log-average miss rate.

:func:`coco_evaluate` gives COCO's 12 box statistics (:data:`COCO_STATS`: AP, AP50, AP75, APs, APm, APl, AR1, AR10,
AR100, ARs, ARm, ARl) and ``AP/<class>`` per class, all on the 0..1 scale (``-1`` where COCO has nothing to
measure, e.g. APs without small objects). ``faster-coco-eval`` computes exactly what pycocotools does (a test
compares every number); ``pip install 'unip[detection]'`` installs it.

:func:`log_average_miss_rate` is MR^-2 as the Caltech / KAIST benchmarks report it, on the 0..1 scale. Matching
rule, per image and class: detections in decreasing score order; each is matched to the not yet matched,
non-crowd ground truth box of highest IoU when that IoU is >= 0.5 (a true positive); otherwise, when at least half
of the detection's area lies in a crowd / ignore region (intersection over the detection's area >= 0.5, Caltech's
rule and COCO's crowd IoU), it is ignored (neither true nor false positive; an ignore region absorbs any number of
detections); otherwise it is a false positive. Crowd boxes are never misses. Over the whole set, the miss rate
``1 - TP / GT`` and false positives per image ``FP / images`` (every image, negatives included) are taken at each
score threshold (tied scores form one threshold); at each of 9 FPPI references ``10 ** linspace(-2, 0, 9)`` the
miss rate is that of the lowest threshold whose FPPI does not exceed the reference (1 when none does); MR^-2 is
their geometric mean, each floored at 1e-10.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["COCO_STATS", "DetectionEvaluator", "coco_evaluate", "log_average_miss_rate", "miss_rate_curve",
           "results_json"]

logger = logging.getLogger(__name__)
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
"""Names of COCO's 12 box statistics, in ``COCOeval.stats`` order."""


def _quiet(*_: Any) -> None:
    """faster-coco-eval's progress messages: dropped."""


def coco_evaluate(ground_truth: dict, results: list[dict], class_names: Sequence[str] | None = None,
                  iou_type: str = "bbox") -> dict[str, float]:
    """COCO box (``iou_type="bbox"``) or instance-mask (``"segm"``: results and ground truth carry
    ``segmentation``) evaluation of ``results`` against ``ground_truth`` (0..1 scale).

    Args:
        ground_truth: A COCO dict (``images``, ``annotations``, ``categories``), e.g.
            :meth:`DetectionDataset.coco_ground_truth`.
        results: COCO-results entries ``{image_id, category_id, bbox: [x, y, w, h], score}``.
        class_names: Names for the per-class keys, one per category in id order; None: the categories' names.

    Returns:
        ``{name: value}`` for :data:`COCO_STATS` plus ``AP/<class>`` (area all, 100 detections; -1 for a class
        without ground truth).
    """
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError as error:
        raise ImportError("COCO evaluation needs faster-coco-eval: pip install 'unip[detection]'") from error
    gt = COCO(copy.deepcopy(ground_truth), print_function=_quiet)
    known = set(gt.getImgIds())
    unknown = sorted({int(r["image_id"]) for r in results} - known)
    if unknown:
        raise ValueError(f"results name image ids {unknown[:5]} that are not in the ground truth")
    evaluator = COCOeval_faster(gt, gt.loadRes(copy.deepcopy(results)), iou_type, print_function=_quiet)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    metrics = {name: float(value) for name, value in zip(COCO_STATS, evaluator.stats, strict=False)}
    precision = evaluator.eval["precision"]  # (IoUs, recalls, classes, areas, max dets)
    cat_ids = [int(c) for c in evaluator.params.catIds]
    names = gt.cats
    if class_names is not None and len(class_names) != len(cat_ids):
        raise ValueError(f"{len(class_names)} class names for {len(cat_ids)} categories")
    for k, cid in enumerate(cat_ids):
        values = precision[:, :, k, 0, -1]  # (IoUs, recalls): area all, most detections
        values = values[values > -1]
        name = class_names[k] if class_names is not None else names[cid].get("name", str(cid))
        metrics[f"AP/{name}"] = float(values.mean()) if values.size else -1.0
    return metrics


def results_json(image_ids: Sequence[int], outputs: Sequence[dict], category_ids: Sequence[int]) -> list[dict]:
    """COCO-results entries from model outputs.

    Args:
        image_ids: The annotation file's id of each image.
        outputs: Per image: ``boxes`` (N, 4) XYXY pixels, ``scores`` (N,), ``labels`` (N,) 0..K-1, and for Mask
            R-CNN ``masks`` (N, 1, H, W) probabilities (thresholded at 0.5, as torchvision's references do).
        category_ids: Original category id of each label.

    Returns:
        ``[{image_id, category_id, bbox: [x, y, w, h], score}, ...]`` (with ``segmentation`` RLE for masks).
    """
    if len(image_ids) != len(outputs):
        raise ValueError(f"{len(image_ids)} image ids for {len(outputs)} outputs")
    entries = []
    for image_id, output in zip(image_ids, outputs, strict=True):
        boxes = np.asarray(_numpy(output["boxes"]), np.float64).reshape(-1, 4)  # (N, 4)
        scores, labels = _numpy(output["scores"]).reshape(-1), _numpy(output["labels"]).reshape(-1)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(category_ids)):
            raise ValueError(f"image {image_id}: labels {sorted(set(labels.tolist()))} outside 0.."
                             f"{len(category_ids) - 1}")
        masks = _numpy(output["masks"]) if output.get("masks") is not None else None  # (N, 1, H, W)
        for n, (box, score, label) in enumerate(zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True)):
            entries.append({"image_id": int(image_id), "category_id": int(category_ids[int(label)]),
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": float(score)})
            if masks is not None:
                from unip_hub.detection.datasets import mask_rle

                entries[-1]["segmentation"] = mask_rle(masks[n].reshape(masks.shape[-2:]) >= 0.5)
    return entries


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _overlaps(dets: np.ndarray, gts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection over detection area of XYWH boxes: (D, G) each."""
    d, g = dets[:, None, :], gts[None, :, :]  # (D, 1, 4), (1, G, 4)
    iw = np.clip(np.minimum(d[..., 0] + d[..., 2], g[..., 0] + g[..., 2]) - np.maximum(d[..., 0], g[..., 0]), 0, None)
    ih = np.clip(np.minimum(d[..., 1] + d[..., 3], g[..., 1] + g[..., 3]) - np.maximum(d[..., 1], g[..., 1]), 0, None)
    inter = iw * ih  # (D, G)
    det_area, gt_area = d[..., 2] * d[..., 3], g[..., 2] * g[..., 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(inter > 0, inter / (det_area + gt_area - inter), 0.0)
        ioa = np.where(inter > 0, inter / det_area, 0.0)
    return iou, ioa


def miss_rate_curve(ground_truth: dict, results: list[dict], category_id: int | None = None,
                    iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """FPPI and miss rate at every score threshold (see the module docstring for the matching rule).

    Returns:
        ``(fppi, miss_rate)``, each (T,), thresholds from the highest score down; empty when there are no
        detections.
    """
    category_id = _one_category(ground_truth, category_id)
    images = [int(im["id"]) for im in ground_truth["images"]]
    gts: dict[int, list[tuple[list[float], bool]]] = {i: [] for i in images}
    for ann in ground_truth["annotations"]:
        if int(ann["category_id"]) == category_id:
            gts[int(ann["image_id"])].append((list(ann["bbox"]), bool(ann.get("iscrowd", 0))))
    num_gt = sum(not crowd for entries in gts.values() for _, crowd in entries)
    if num_gt == 0:
        raise ValueError(f"category {category_id} has no (non-crowd) ground truth boxes: the miss rate is undefined")
    dets: dict[int, list[tuple[float, list[float]]]] = {i: [] for i in images}
    for r in results:
        if int(r["category_id"]) == category_id:
            dets[int(r["image_id"])].append((float(r["score"]), list(r["bbox"])))
    scores, positive = [], []
    for image_id in images:
        entries = sorted(dets[image_id], key=lambda e: -e[0])  # stable: ties keep their order
        if not entries:
            continue
        boxes = np.asarray([b for _, b in entries], np.float64).reshape(-1, 4)
        real = np.asarray([b for b, crowd in gts[image_id] if not crowd], np.float64).reshape(-1, 4)
        ignore = np.asarray([b for b, crowd in gts[image_id] if crowd], np.float64).reshape(-1, 4)
        iou, _ = _overlaps(boxes, real)
        _, ioa = _overlaps(boxes, ignore)
        matched = np.zeros(len(real), bool)
        for k, (score, _) in enumerate(entries):
            candidates = np.where(matched, -1.0, iou[k])
            if len(real) and candidates.max() >= iou_threshold:
                matched[int(candidates.argmax())] = True
                scores.append(score)
                positive.append(True)
            elif not (len(ignore) and ioa[k].max() >= iou_threshold):
                scores.append(score)
                positive.append(False)
    if not scores:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-np.asarray(scores), kind="stable")
    ordered, positive_sorted = np.asarray(scores)[order], np.asarray(positive)[order]
    tp, fp = np.cumsum(positive_sorted), np.cumsum(~positive_sorted)  # (D,)
    last = np.append(ordered[1:] != ordered[:-1], True)  # the last detection of each score: one threshold
    return fp[last] / len(images), 1.0 - tp[last] / num_gt


def _one_category(ground_truth: dict, category_id: int | None) -> int:
    ids = sorted(int(c["id"]) for c in ground_truth["categories"])
    if category_id is None:
        if len(ids) != 1:
            raise ValueError(f"the ground truth has categories {ids}: name the one to measure (category_id)")
        return ids[0]
    if category_id not in ids:
        raise ValueError(f"category id {category_id} is not in the ground truth's categories {ids}")
    return category_id


def log_average_miss_rate(ground_truth: dict, results: list[dict], category_id: int | None = None,
                          iou_threshold: float = 0.5) -> float:
    """MR^-2: the geometric mean of the miss rate at 9 FPPI points evenly spaced in log space over [1e-2, 1e0].

    Args:
        ground_truth: A COCO dict; ``iscrowd`` boxes are ignore regions.
        results: COCO-results entries.
        category_id: The class measured (e.g. the person category); None when the set has one category.
        iou_threshold: Match threshold (0.5, as Caltech / KAIST).

    Returns:
        MR^-2 on the 0..1 scale (lower is better).
    """
    fppi, miss = miss_rate_curve(ground_truth, results, category_id, iou_threshold)
    references = np.logspace(-2.0, 0.0, 9)
    sampled = []
    for reference in references:
        below = np.flatnonzero(fppi <= reference)
        sampled.append(miss[below[-1]] if below.size else 1.0)
    return float(np.exp(np.mean(np.log(np.maximum(np.asarray(sampled), 1e-10)))))


class DetectionEvaluator:
    """Collects model outputs over a dataset and scores them (COCO AP; MR^-2 of the person class when present).

    Args:
        dataset: A :class:`~unip_hub.detection.datasets.DetectionDataset` (its ground truth and category ids).
        miss_rate_class: Class whose MR^-2 is added as ``MR-2``: a name, ``"auto"`` (``person`` if the dataset has
            it) or None (off).

    Under DDP, gather every rank's :attr:`results` (``torch.distributed.all_gather_object``) into one evaluator.
    """

    def __init__(self, dataset: Any, miss_rate_class: str | None = "auto") -> None:
        self.ground_truth = dataset.coco_ground_truth()
        self.class_names = list(dataset.class_names)
        self.category_ids = list(dataset.category_ids)
        if miss_rate_class == "auto":
            miss_rate_class = "person" if "person" in self.class_names else None
        if miss_rate_class is not None and miss_rate_class not in self.class_names:
            raise ValueError(f"miss-rate class {miss_rate_class!r} is not one of {self.class_names}")
        self.miss_rate_class = miss_rate_class
        self.results: list[dict] = []

    def reset(self) -> None:
        """Forget the collected results."""
        self.results = []

    def update(self, image_ids: Sequence[int], outputs: Sequence[dict]) -> None:
        """Add the eval-mode outputs (boxes XYXY, scores, labels 0..K-1) of the images ``image_ids``."""
        self.results += results_json(image_ids, outputs, self.category_ids)

    def compute(self) -> dict[str, float]:
        """COCO box statistics and per-class AP (0..1); the same for instance masks as ``mask_<name>`` when the
        outputs and the ground truth have masks (Mask R-CNN); ``MR-2`` when a miss-rate class is set."""
        metrics = coco_evaluate(self.ground_truth, self.results, self.class_names)
        has_masks = self.results and all("segmentation" in r for r in self.results)
        if has_masks and all("segmentation" in a for a in self.ground_truth["annotations"]):
            segm = coco_evaluate(self.ground_truth, self.results, self.class_names, iou_type="segm")
            metrics.update({f"mask_{name}": value for name, value in segm.items()})
        if self.miss_rate_class is not None:
            cid = self.category_ids[self.class_names.index(self.miss_rate_class)]
            has_gt = any(a["category_id"] == cid and not a.get("iscrowd", 0) for a in self.ground_truth["annotations"])
            metrics["MR-2"] = log_average_miss_rate(self.ground_truth, self.results, cid) if has_gt else float("nan")
        return metrics
