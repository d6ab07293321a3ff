"""Tests of unip_hub.metrics against hand-made confusion cases worked out on paper (mmseg's mIoU definition)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from unip_hub.metrics import SegMetric, format_table, intersect_and_union, to_json


def test_perfect_prediction() -> None:
    label = torch.tensor([[0, 1], [2, 2]])
    metric = SegMetric(num_classes=3)
    metric.update(label.clone(), label)
    result = metric.compute()
    assert result["mIoU"] == result["mAcc"] == result["aAcc"] == 1.0
    assert result["IoU"] == [1.0, 1.0, 1.0]


def test_all_wrong() -> None:
    metric = SegMetric(num_classes=2)
    metric.update(np.array([[1, 1], [0, 0]]), np.array([[0, 0], [1, 1]]))
    result = metric.compute()
    assert result["mIoU"] == result["aAcc"] == result["mAcc"] == 0.0
    assert result["area_union"] == [4, 4]


def test_hand_worked_case() -> None:
    # label: 0 0 1 1 2 ; pred: 0 1 1 1 0
    # class 0: I=1, U=|{0,1,4}|=3 -> 1/3, Acc 1/2; class 1: I=2, U=3 -> 2/3, Acc 1; class 2: I=0, U=1 -> 0, Acc 0
    i, u, p, lab = intersect_and_union(torch.tensor([0, 1, 1, 1, 0]), torch.tensor([0, 0, 1, 1, 2]), 3)
    assert i.tolist() == [1, 2, 0] and u.tolist() == [3, 3, 1] and p.tolist() == [2, 3, 0] and lab.tolist() == [2, 2, 1]
    metric = SegMetric(3)
    metric.update(torch.tensor([0, 1, 1, 1, 0]), torch.tensor([0, 0, 1, 1, 2]))
    result = metric.compute()
    assert result["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert result["mAcc"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert result["aAcc"] == pytest.approx(3 / 5)


def test_ignore_index_is_excluded() -> None:
    pred = torch.tensor([[0, 1, 1, 0]])
    label = torch.tensor([[0, 1, 255, 255]])  # the two wrong-looking pixels are ignored
    metric = SegMetric(2)
    metric.update(pred, label)
    result = metric.compute()
    assert result["mIoU"] == 1.0 and result["aAcc"] == 1.0 and result["area_pred"] == [1, 1]


def test_absent_class_is_nan_and_skipped() -> None:
    metric = SegMetric(4)
    metric.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]))  # classes 2 and 3 nowhere
    result = metric.compute()
    assert math.isnan(result["IoU"][2]) and math.isnan(result["IoU"][3]) and math.isnan(result["Acc"][3])
    assert result["mIoU"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    predicted_only = SegMetric(3)
    predicted_only.update(torch.tensor([2, 1]), torch.tensor([1, 1]))  # class 2 predicted, never labelled
    res = predicted_only.compute()
    assert res["IoU"][2] == 0.0 and math.isnan(res["Acc"][2]) and res["mIoU"] == pytest.approx((0.5 + 0.0) / 2)


def test_dataset_wide_accumulation_differs_from_per_image_mean() -> None:
    # image A: 1 pixel of class 1, missed. image B: 99 pixels of class 1, all right. Class 0 everywhere else right.
    label_a, pred_a = torch.tensor([0] * 9 + [1]), torch.tensor([0] * 10)
    label_b, pred_b = torch.tensor([0] + [1] * 99), torch.tensor([0] + [1] * 99)
    per_image = []
    for pred, label in ((pred_a, label_a), (pred_b, label_b)):
        single = SegMetric(2)
        single.update(pred, label)
        per_image.append(single.compute()["mIoU"])
    total = SegMetric(2)
    total.update(pred_a, label_a)
    total.update(pred_b, label_b)
    # dataset-wide: class 0 I=10 U=11, class 1 I=99 U=100
    assert total.compute()["mIoU"] == pytest.approx((10 / 11 + 99 / 100) / 2)
    assert np.mean(per_image) == pytest.approx(((9 / 10 + 0) / 2 + 1.0) / 2)
    assert abs(total.compute()["mIoU"] - np.mean(per_image)) > 0.2


def test_logits_batches_and_merge() -> None:
    label = torch.randint(0, 3, (2, 5, 6))
    logits = torch.nn.functional.one_hot(label, 3).permute(0, 3, 1, 2).float()  # (B, C, H, W)
    a, b = SegMetric(3), SegMetric(3)
    a.update(logits[:1], label[:1])
    b.update(logits[1], label[1])  # (C, H, W) against (H, W)
    merged = a.merge(b).compute()
    assert merged["mIoU"] == 1.0 and sum(merged["area_label"]) == 60
    assert a.all_reduce() is a  # not distributed: a no-op
    with pytest.raises(ValueError, match="shape"):
        a.update(torch.zeros(2, 3), torch.zeros(3, 2))


def test_out_of_range_values_are_not_counted() -> None:
    i, u, p, lab = intersect_and_union(torch.tensor([0, 7, 1]), torch.tensor([0, 1, 9]), num_classes=2)
    assert p.tolist() == [1, 1] and lab.tolist() == [1, 1] and i.tolist() == [1, 0] and u.tolist() == [1, 2]


def test_table_and_json() -> None:
    metric = SegMetric(3)
    metric.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    result = metric.compute()
    table = format_table(result, ["bg", "person", "car"])
    assert "person" in table and "nan" in table and "mIoU 50.00" in table
    data = json.loads(to_json(result, ["bg", "person", "car"]))
    assert data["IoU"][2] is None and data["per_class"]["person"]["IoU"] == 0.5 and data["mIoU"] == 0.5
    with pytest.raises(ValueError, match="names"):
        format_table(result, ["only one"])
