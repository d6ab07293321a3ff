"""Evaluation: numbers equal a hand computation over the predictions (dataset-wide IoU), whole and slide modes,
rescaled inference, JSON output, the ``unip eval`` CLI, and clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers.training import TINY_BACKBONE, write_radiometric_dataset

from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
from unip_hub.cli import main
from unip_hub.data.synthetic import write_synthetic_dataset
from unip_hub.hub.segmenters import create_segmenter
from unip_hub.train.evaluate import evaluate, save_results

K = 4


class _ListDataset:
    """Normalised images of different sizes with labels that include ignored (255) pixels."""

    num_classes = K

    def __init__(self, sizes, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for h, w in sizes:
            image = torch.randn(3, h, w, generator=g)
            label = torch.randint(0, K, (h, w), generator=g)
            label[: h // 4] = 255
            self.items.append((image, label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.fixture(scope="module")
def seg():
    torch.manual_seed(0)
    model = create_segmenter("unip_vit_tiny", num_classes=K, img_size=32, **TINY_BACKBONE).eval()
    with torch.no_grad():  # a random head predicts one class almost everywhere; spread the logits out
        model.decode_head.conv_seg.weight.mul_(50)
    return model


def _hand_metrics(preds, labels):
    """Per-class IoU / Acc from dataset-wide sums, written from the definitions (independently of unip_hub)."""
    inter, union, lab = np.zeros(K), np.zeros(K), np.zeros(K)
    correct = total = 0
    for p, t in zip(preds, labels):
        keep = t != 255
        p, t = p[keep], t[keep]
        correct += (p == t).sum()
        total += t.size
        for c in range(K):
            inter[c] += ((p == c) & (t == c)).sum()
            union[c] += ((p == c) | (t == c)).sum()
            lab[c] += (t == c).sum()
    iou = [i / u if u else math.nan for i, u in zip(inter, union)]
    acc = [i / n if n else math.nan for i, n in zip(inter, lab)]
    return {"IoU": iou, "Acc": acc, "mIoU": np.nanmean(iou), "mAcc": np.nanmean(acc), "aAcc": correct / total}


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_evaluate_equals_hand_computed_metrics(seg, mode):
    data = _ListDataset([(48, 64), (40, 40), (64, 48)])
    result = evaluate(seg, data, mode=mode, crop_size=32, stride=21, progress=False)
    preds = [seg.predict(img, mode=mode, crop_size=32, stride=21).numpy() for img, _ in data.items]
    assert len({int(v) for p in preds for v in np.unique(p)}) > 1  # not a constant prediction
    expected = _hand_metrics(preds, [lb.numpy() for _, lb in data.items])
    for key in ("mIoU", "mAcc", "aAcc"):
        assert result[key] == pytest.approx(expected[key], abs=1e-12), key
    np.testing.assert_allclose(result["IoU"], expected["IoU"], atol=1e-12)
    np.testing.assert_allclose(result["Acc"], expected["Acc"], atol=1e-12)
    assert result["mode"] == mode and result["num_images"] == 3
    # dataset-wide sums, not a mean of per-image mIoUs
    per_image = np.mean([_hand_metrics([p], [lb.numpy()])["mIoU"] for p, (_, lb) in zip(preds, data.items)])
    assert result["mIoU"] != pytest.approx(per_image, abs=1e-9)


def test_rescaled_inference_compares_at_label_size(seg):
    data = _ListDataset([(40, 56)], seed=1)
    result = evaluate(seg, data, mode="whole", scale=(128, 80), progress=False)
    image, label = data.items[0]
    pred = seg.predict(image, scale=(128, 80)).numpy()
    assert pred.shape == (40, 56)
    assert result["mIoU"] == pytest.approx(_hand_metrics([pred], [label.numpy()])["mIoU"], abs=1e-12)


def test_evaluate_refuses_bad_input(seg):
    with pytest.raises(ValueError, match="mode"):
        evaluate(seg, _ListDataset([(32, 32)]), mode="tiles", progress=False)
    wrong = _ListDataset([(32, 32)])
    wrong.num_classes = 9
    with pytest.raises(ValueError, match="9 classes"):
        evaluate(seg, wrong, progress=False)
    with pytest.raises(ValueError, match="empty"):
        evaluate(seg, _ListDataset([]), progress=False)


def test_save_results_json(tmp_path, seg):
    result = evaluate(seg, _ListDataset([(32, 32)]), progress=False)
    result["IoU"][0] = math.nan  # a class absent from labels and predictions
    path = save_results(result, tmp_path / "r.json", ["a", "b", "c", "d"], {"checkpoint": "x.pth"})
    out = json.loads(path.read_text())
    assert out["checkpoint"] == "x.pth" and out["per_class"]["a"]["IoU"] is None
    assert out["mIoU"] == pytest.approx(result["mIoU"]) and out["classes"] == ["a", "b", "c", "d"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.slow
def test_cli_eval_on_a_folder_dataset(tmp_path, capsys):
    root = write_synthetic_dataset(tmp_path / "data", n_train=1, n_test=3, size=(48, 64))
    torch.manual_seed(0)
    model = create_segmenter("unip_vit_tiny", num_classes=7, img_size=32, **TINY_BACKBONE).eval()
    ckpt = save_segmenter_checkpoint(model, tmp_path / "seg.pth")
    out = tmp_path / "res.json"
    assert main(["eval", str(ckpt), "--dataset", "folder", "--data-root", str(root), "--mode", "slide",
                 "--crop-size", "32", "--stride", "16", "--native", "--num-workers", "0", "--no-progress",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "vegetation" in printed
    saved = json.loads(out.read_text())
    from unip_hub.train.finetune import FinetuneConfig, build_dataset

    data = build_dataset(FinetuneConfig(dataset="folder", data_root=str(root)).resolved(), "test")
    expected = evaluate(model, data, mode="slide", crop_size=32, stride=16, progress=False)
    assert saved["mIoU"] == pytest.approx(expected["mIoU"]) and saved["stride"] == 16 and saved["scale"] is None
    assert main(["eval", str(ckpt), "--dataset", "soda", "--data-root", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("spec", ["window 20..40 degC", None])
def test_eval_reads_images_with_the_checkpoints_input_scaling(tmp_path, monkeypatch, spec):
    import unip_hub.train.evaluate as E
    from unip_hub.data.radiometric import read_radiometric
    from unip_hub.data.readers import read_thermal
    from unip_hub.data.scaling import InputScaling
    from unip_hub.data.transforms import normalize

    root = write_radiometric_dataset(tmp_path / "data", n_train=1, n_test=2)
    torch.manual_seed(0)
    model = create_segmenter("unip_vit_tiny", num_classes=7, img_size=32, **TINY_BACKBONE).eval()
    model.input_scaling = spec or "percentile 0.5/99.5"
    meta = {**model.config, "num_classes": 7, "input_scaling": spec}  # None: as older files, without the entry
    ckpt = save_segmenter_checkpoint(model, tmp_path / "seg.safetensors", meta)
    seen = {}
    real = E.evaluate

    def spy(segmenter, dataset, *args, **kwargs):
        seen["dataset"] = dataset
        return real(segmenter, dataset, *args, **kwargs)

    monkeypatch.setattr(E, "evaluate", spy)
    out = tmp_path / "r.json"
    E.evaluate_checkpoint(ckpt, "folder", str(root), mode="whole", native=True, num_workers=0, progress=False,
                          out=out)
    data = seen["dataset"]
    for i, (image_path, _) in enumerate(data.samples):
        if spec:  # the checkpoint's window, not the default percentiles
            gray = InputScaling.parse(spec).to_gray(read_radiometric(image_path))
            assert not np.array_equal(gray, read_thermal(image_path))
        else:  # a file without the entry: the default, read as always
            gray = read_thermal(image_path)
        torch.testing.assert_close(data[i][0], normalize(gray), rtol=0, atol=0)
    assert json.loads(out.read_text())["input_scaling"] == (spec or "percentile 0.5/99.5")
