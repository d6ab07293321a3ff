"""Detection evaluation: faster-coco-eval equals pycocotools, MR^-2 against hand-computed cases, the evaluator."""

from __future__ import annotations

import contextlib
import copy
import io
import math

import numpy as np
import pytest
import torch

pytest.importorskip("faster_coco_eval")

from unip_hub.detection.datasets import dataset_from_arrays
from unip_hub.detection.evaluate import (
    COCO_STATS,
    DetectionEvaluator,
    coco_evaluate,
    log_average_miss_rate,
    miss_rate_curve,
    results_json,
)

IMAGE_IDS = [7, 42, 3, 1000, 55, 8]  # not contiguous, not sorted
CATEGORY_IDS = [1, 5, 90]
SIZES = {"small": (8, 30), "medium": (34, 90), "large": (100, 160)}  # box sides: areas < 32^2, 32^2..96^2, > 96^2


def _scene(seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO ground truth (crowd regions, a negative image, three sizes, three classes) and noisy detections."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for n, image_id in enumerate(IMAGE_IDS):
        images.append({"id": image_id, "width": 320, "height": 256, "file_name": f"{image_id}.png"})
        if n == 3:  # a negative image: only false positives
            results += [{"image_id": image_id, "category_id": int(rng.choice(CATEGORY_IDS)),
                         "bbox": [float(v) for v in rng.uniform(0, 150, 4)], "score": float(rng.uniform(0.05, 0.9))}
                        for _ in range(3)]
            continue
        for k in range(9):
            low, high = SIZES[("small", "medium", "large")[k % 3]]
            w, h = rng.uniform(low, high, 2)
            x, y = rng.uniform(0, 320 - w), rng.uniform(0, 256 - h)
            cid = CATEGORY_IDS[(k + n) % 3]
            crowd = int(k == 8 and n % 2 == 0)
            annotations.append({"id": len(annotations) + 100, "image_id": image_id, "category_id": cid,
                                "bbox": [x, y, w, h], "area": w * h * (0.9 if k == 4 else 1.0), "iscrowd": crowd})
            for _ in range(int(rng.integers(0, 3))):  # 0..2 detections per object: misses and duplicates
                jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
                label = cid if rng.uniform() < 0.85 else int(rng.choice(CATEGORY_IDS))
                bbox = [x + jitter[0], y + jitter[1], max(w + jitter[2], 1.0), max(h + jitter[3], 1.0)]
                results.append({"image_id": image_id, "category_id": label, "bbox": bbox,
                                "score": float(rng.uniform(0.05, 1.0))})
        for _ in range(2):  # background false positives
            results.append({"image_id": image_id, "category_id": int(rng.choice(CATEGORY_IDS)),
                            "bbox": [float(v) for v in rng.uniform(10, 120, 4)], "score": float(rng.uniform(0, 0.6))})
    categories = [{"id": cid, "name": name} for cid, name in zip(CATEGORY_IDS, ["person", "bike", "car"], strict=True)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _pycocotools(ground_truth: dict, results: list[dict], iou_type: str = "bbox") -> tuple[np.ndarray, np.ndarray]:
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco.COCO()
        gt.dataset = copy.deepcopy(ground_truth)
        gt.createIndex()
        evaluator = cocoeval.COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats), evaluator.eval["precision"]


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_evaluate_equals_pycocotools(seed):
    ground_truth, results = _scene(seed)
    areas = [a["area"] for a in ground_truth["annotations"] if not a["iscrowd"]]
    assert min(areas) < 32**2 and any(32**2 < a < 96**2 for a in areas) and max(areas) > 96**2
    assert any(a["iscrowd"] for a in ground_truth["annotations"])
    ours = coco_evaluate(ground_truth, results)
    stats, precision = _pycocotools(ground_truth, results)
    for name, value in zip(COCO_STATS, stats, strict=True):
        assert ours[name] == pytest.approx(float(value), abs=1e-9), name
    for k, name in enumerate(["person", "bike", "car"]):
        values = precision[:, :, k, 0, -1]
        assert ours[f"AP/{name}"] == pytest.approx(float(values[values > -1].mean()), abs=1e-9), name
    assert 0.05 < ours["AP"] < 0.95 and ours["APs"] != -1 and ours["APl"] != -1  # a non-trivial case
    assert ground_truth == _scene(seed)[0]  # the inputs are not modified


def _ellipse(box: list[float], height: int = 256, width: int = 320) -> np.ndarray:
    """A filled ellipse inside an XYWH box, uint8 (H, W): an instance mask that is not its box."""
    x, y, w, h = box
    yy, xx = np.mgrid[:height, :width]
    return ((((xx + 0.5 - x - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - y - h / 2) / (h / 2)) ** 2) <= 1).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1])
def test_mask_ap_equals_pycocotools(seed):
    """Instance-mask AP (``iou_type="segm"``, Mask R-CNN) through faster-coco-eval equals pycocotools'."""
    from unip_hub.detection.datasets import mask_rle

    ground_truth, results = _scene(seed)
    for a in ground_truth["annotations"]:
        a["segmentation"] = mask_rle(_ellipse(a["bbox"]))
    for r in results:
        r["segmentation"] = mask_rle(_ellipse(r["bbox"]))
    ours = coco_evaluate(ground_truth, results, iou_type="segm")
    stats, _ = _pycocotools(ground_truth, results, "segm")
    for name, value in zip(COCO_STATS, stats, strict=True):
        assert ours[name] == pytest.approx(float(value), abs=1e-9), name
    assert 0.05 < ours["AP"] < 0.95 and ours["AP"] != coco_evaluate(ground_truth, results)["AP"]


def test_evaluator_reports_mask_ap_for_mask_outputs():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (48, 64), dtype=np.uint8) for _ in range(2)]
    boxes = [[[4, 6, 30, 40]], [[20, 2, 60, 30]]]
    masks = [_ellipse([b[0][0], b[0][1], b[0][2] - b[0][0], b[0][3] - b[0][1]], 48, 64)[None] for b in boxes]
    targets = [{"boxes": b, "labels": [0], "masks": m} for b, m in zip(boxes, masks, strict=True)]
    dataset = dataset_from_arrays(images, targets, ["person"])
    evaluator = DetectionEvaluator(dataset, miss_rate_class=None)
    assert all("segmentation" in a for a in dataset.coco_ground_truth()["annotations"])
    right = [{"boxes": torch.tensor(b, dtype=torch.float32), "scores": torch.tensor([0.9]), "labels": torch.tensor([0]),
              "masks": torch.from_numpy(m[None].astype(np.float32))} for b, m in zip(boxes, masks, strict=True)]
    evaluator.update(dataset.image_ids, right)
    metrics = evaluator.compute()
    assert metrics["AP"] == pytest.approx(1.0) and metrics["mask_AP"] == pytest.approx(1.0)
    evaluator.reset()
    wrong = [{**o, "masks": torch.from_numpy(1 - m[None].astype(np.float32))}
             for o, m in zip(right, masks, strict=True)]
    evaluator.update(dataset.image_ids, wrong)  # right boxes, inverted masks
    metrics = evaluator.compute()
    assert metrics["AP"] == pytest.approx(1.0) and metrics["mask_AP"] == pytest.approx(0.0)


def test_coco_evaluate_refuses_unknown_images_and_handles_no_detections():
    ground_truth, results = _scene()
    with pytest.raises(ValueError, match=r"image ids \[12345\]"):
        coco_evaluate(ground_truth, [*results, {"image_id": 12345, "category_id": 1, "bbox": [0, 0, 5, 5],
                                                "score": 0.5}])
    empty = coco_evaluate(ground_truth, [])
    assert empty["AP"] == 0.0 and empty["AP/person"] == 0.0


def _gt(boxes_per_image: dict[int, list[tuple[list[float], int]]], num_images: int) -> dict:
    annotations = [{"id": n, "image_id": image_id, "category_id": 1, "bbox": box, "area": box[2] * box[3],
                    "iscrowd": crowd}
                   for n, (image_id, box, crowd) in enumerate(
                       (i, b, c) for i, entries in boxes_per_image.items() for b, c in entries)]
    return {"images": [{"id": i, "width": 100, "height": 100} for i in range(num_images)],
            "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def _det(image_id: int, box: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": 1, "bbox": box, "score": score}


def test_log_average_miss_rate_hand_computed_with_ignore_region():
    # 8 images, 4 people (images 0-3), one crowd / ignore region (image 4); 7 detections:
    #   0.95 img0 IoU 1 -> TP   0.90 img1 IoU 1 -> TP   0.85 img5 -> FP   0.80 img4 inside the ignore region -> ignored
    #   0.70 img2 IoU 1 -> TP   0.60 img6 -> FP   0.50 img3 IoU 0.4 with its person -> FP (that person is missed)
    # thresholds (FPPI = FP / 8, miss = 1 - TP / 4):
    #   (0, 0.75) (0, 0.5) (0.125, 0.5) (0.125, 0.25) (0.25, 0.25) (0.375, 0.25)
    # references 10^linspace(-2, 0, 9) = 0.01 0.0178 0.0316 0.0562 0.1 | 0.178 0.316 0.562 1.0
    #   the first five: last point with FPPI <= ref is (0, 0.5) -> 0.5; the other four: 0.25
    # MR^-2 = exp((5 ln 0.5 + 4 ln 0.25) / 9) = 2^(-13/9) = 0.36744...
    box = [10.0, 10.0, 20.0, 40.0]
    gt = _gt({0: [(box, 0)], 1: [(box, 0)], 2: [(box, 0)], 3: [(box, 0)], 4: [([0.0, 0.0, 60.0, 60.0], 1)]}, 8)
    # boxes are [x, y, w, h]: the image-3 detection [10, 28, 20, 40] overlaps its person [10, 10, 20, 40] by
    # 20 x 22 = 440 px, IoU 440 / (800 + 800 - 440) = 0.379 < 0.5; [5, 5, 20, 20] lies inside the ignore region
    dets = [_det(0, box, 0.95), _det(1, box, 0.90), _det(5, box, 0.85), _det(4, [5.0, 5.0, 20.0, 20.0], 0.80),
            _det(2, box, 0.70), _det(6, box, 0.60), _det(3, [10.0, 28.0, 20.0, 40.0], 0.50)]
    fppi, miss = miss_rate_curve(gt, dets)
    np.testing.assert_allclose(fppi, [0, 0, 0.125, 0.125, 0.25, 0.375])
    np.testing.assert_allclose(miss, [0.75, 0.5, 0.5, 0.25, 0.25, 0.25])
    assert log_average_miss_rate(gt, dets) == pytest.approx(2 ** (-13 / 9), rel=1e-12)
    # without the ignore region the crowd detection is a false positive: FPPI 0.125 already at 0.80, and the
    # threshold (0.125, 0.25) becomes (0.25, 0.25): refs 0.178 -> 0.5; MR = exp((6 ln 0.5 + 3 ln 0.25) / 9) = 2^(-4/3)
    no_ignore = _gt({i: [(box, 0)] for i in range(4)}, 8)
    assert log_average_miss_rate(no_ignore, dets) == pytest.approx(2 ** (-4 / 3), rel=1e-12)


def test_log_average_miss_rate_greedy_by_score_and_floor():
    # 4 images, people in images 0 and 1. In image 0, the 0.9 detection (IoU 0.6) takes the person before the
    # 0.8 one (IoU 0.9): greedy by score, so 0.8 is a duplicate -> FP. 0.3 in image 1 -> TP.
    # thresholds: (0, 0.5) (0.25, 0.5) (0.25, 0.0)
    # references <= 0.178 (six): 0.5; 0.316, 0.562, 1.0: miss 0 floored to 1e-10
    # MR^-2 = exp((6 ln 0.5 + 3 ln 1e-10) / 9)
    person = [0.0, 0.0, 10.0, 10.0]
    gt = _gt({0: [(person, 0)], 1: [(person, 0)]}, 4)
    dets = [_det(0, [0.0, 0.0, 10.0, 6.0], 0.9), _det(0, [0.0, 0.0, 10.0, 9.0], 0.8), _det(1, person, 0.3)]
    fppi, miss = miss_rate_curve(gt, dets)
    np.testing.assert_allclose(fppi, [0, 0.25, 0.25])
    np.testing.assert_allclose(miss, [0.5, 0.5, 0.0])
    expected = math.exp((6 * math.log(0.5) + 3 * math.log(1e-10)) / 9)
    assert log_average_miss_rate(gt, dets) == pytest.approx(expected, rel=1e-12)
    # tied scores are one threshold: both detections at 0.5 -> one point (FPPI 0.25, miss 0.5)
    fppi, miss = miss_rate_curve(gt, [_det(0, person, 0.5), _det(2, person, 0.5)])
    np.testing.assert_allclose(fppi, [0.25])
    np.testing.assert_allclose(miss, [0.5])
    # no detections: every reference misses all -> 1
    assert log_average_miss_rate(gt, []) == 1.0
    with pytest.raises(ValueError, match=r"no .*ground truth"):
        log_average_miss_rate(_gt({}, 2), dets)


def test_evaluator_and_results_json():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48, 64), dtype=np.uint8) for _ in range(3)]
    targets = [{"boxes": [[2, 3, 20, 30], [30, 10, 60, 40]], "labels": [0, 1]}, {"boxes": [], "labels": []},
               {"boxes": [[5, 5, 25, 45], [40, 0, 64, 20]], "labels": [0, 1], "iscrowd": [0, 1]}]
    dataset = dataset_from_arrays(images, targets, ["person", "car"])
    evaluator = DetectionEvaluator(dataset)
    assert evaluator.miss_rate_class == "person"
    outputs = [{"boxes": torch.tensor([[2.0, 3.0, 20.0, 30.0], [30.0, 10.0, 60.0, 40.0]]),
                "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 1])},
               {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
               {"boxes": torch.tensor([[5.0, 5.0, 25.0, 45.0]]), "scores": torch.tensor([0.7]),
                "labels": torch.tensor([0])}]  # the crowd car of image 2 needs no detection
    evaluator.update(dataset.image_ids[:2], outputs[:2])
    evaluator.update(dataset.image_ids[2:], outputs[2:])
    metrics = evaluator.compute()
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP/person"] == pytest.approx(1.0)
    assert metrics["AP/car"] == pytest.approx(1.0) and metrics["MR-2"] == pytest.approx(1e-10)
    entries = results_json([7], [outputs[0]], [11, 22])
    assert entries == [{"image_id": 7, "category_id": 11, "bbox": [2.0, 3.0, 18.0, 27.0], "score": pytest.approx(0.9)},
                       {"image_id": 7, "category_id": 22, "bbox": [30.0, 10.0, 30.0, 30.0],
                        "score": pytest.approx(0.8)}]
    with pytest.raises(ValueError, match=r"labels \[5\] outside 0..1"):
        results_json([7], [{"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.tensor([5])}],
                     [11, 22])
    evaluator.reset()
    assert evaluator.compute()["AP"] == 0.0
