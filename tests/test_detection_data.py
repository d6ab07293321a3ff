"""Detection data: COCO / FLIR ADAS v1, v2 / LLVIP / YOLO layouts built in tmp folders, readers and scaling,
augmentation with counted fixes, and one-line errors for bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.samples import shared_samples
from PIL import Image

pytest.importorskip("torchvision")
from torchvision import tv_tensors

from unip_hub.data.radiometric import read_radiometric
from unip_hub.data.scaling import DEFAULT_SCALING, InputScaling
from unip_hub.detection.datasets import (
    coco_dataset,
    dataset_from_arrays,
    detection_collate,
    flir_adas,
    llvip,
    yolo_dataset,
)
from unip_hub.detection.transforms import LargeScaleJitter, eval_transforms, train_transforms


def _gray(path: Path, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    gray = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    Image.fromarray(gray).save(path)
    return gray


def _write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _coco(tmp_path: Path) -> tuple[Path, Path, dict[int, np.ndarray]]:
    """Images 17 (boxes, a crowd region, a box out of the image, a zero-size box), 3 (negative), 900 (boxes)."""
    grays = {17: _gray(tmp_path / "img" / "a.png"), 3: _gray(tmp_path / "img" / "sub" / "b.png", seed=1),
             900: _gray(tmp_path / "img" / "c.png", seed=2)}
    data = {
        "images": [{"id": 17, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 3, "file_name": "sub/b.png", "width": 64, "height": 48},
                   {"id": 900, "file_name": "c.png", "width": 64, "height": 48}],
        "categories": [{"id": 90, "name": "car"}, {"id": 2, "name": "person"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 17, "category_id": 2, "bbox": [4, 5, 10, 20], "area": 150.0, "iscrowd": 0},
            {"id": 2, "image_id": 17, "category_id": 90, "bbox": [30, 10, 20, 10], "iscrowd": 0},
            {"id": 3, "image_id": 17, "category_id": 2, "bbox": [0, 30, 40, 18], "iscrowd": 1},
            {"id": 4, "image_id": 17, "category_id": 7, "bbox": [50, 40, 30, 30]},  # outside: clipped to 14 x 8
            {"id": 5, "image_id": 17, "category_id": 7, "bbox": [10, 10, 0, 5]},  # zero width: dropped
            {"id": 6, "image_id": 900, "category_id": 7, "bbox": [1, 2, 3, 4]},
        ],
    }
    return tmp_path / "img", _write_json(tmp_path / "ann.json", data), grays


def test_coco_ids_crowd_negatives_and_fixes(tmp_path, caplog):
    images_dir, ann, grays = _coco(tmp_path)
    with caplog.at_level(logging.WARNING, logger="unip_hub.detection.datasets"):
        dataset = coco_dataset(images_dir, ann)
    assert "clipped 1, dropped 1" in caplog.text and str(ann) in caplog.text
    assert dataset.fixes == {"clipped": 1, "dropped": 1}
    assert dataset.class_names == ["person", "dog", "car"] and dataset.category_ids == [2, 7, 90]
    assert dataset.image_ids == [17, 3, 900] and len(dataset) == 3
    image, target = dataset[0]
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 48, 64) and image.dtype == torch.float32
    expected = torch.from_numpy(grays[17]).float() / 255
    assert all(torch.equal(image[c], expected) for c in range(3))
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].canvas_size == (48, 64)
    torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor),
                               torch.tensor([[4.0, 5, 14, 25], [30, 10, 50, 20], [50, 40, 64, 48]]))
    assert target["labels"].tolist() == [0, 2, 1] and target["image_id"] == 17  # the crowd region is not a target
    assert target["iscrowd"].tolist() == [0, 0, 0] and target["area"].tolist() == [200.0, 200.0, 112.0]
    image, target = dataset[1]  # the negative image
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,) and target["image_id"] == 3
    gt = dataset.coco_ground_truth()
    assert [im["id"] for im in gt["images"]] == [17, 3, 900]
    assert [(a["image_id"], a["category_id"], a["iscrowd"]) for a in gt["annotations"]] == \
        [(17, 2, 0), (17, 90, 0), (17, 2, 1), (17, 7, 0), (900, 7, 0)]
    assert gt["annotations"][0]["area"] == 150.0 and gt["annotations"][3]["bbox"] == [50.0, 40.0, 14.0, 8.0]
    images, targets = detection_collate([dataset[0], dataset[2]])
    assert len(images) == 2 and [t["image_id"] for t in targets] == [17, 900]


def _flir_categories(version: str) -> list[dict]:
    if version == "v1":
        pairs = [(1, "person"), (2, "bicycle"), (3, "car"), (18, "dog"), (91, "other")]
        return [{"id": i, "name": n} for i, n in pairs]
    names = ["person", "bike", "car", "motor", "bus", "train", "truck", "light", "hydrant", "sign", "dog"]
    return [{"id": i + 1, "name": n} for i, n in enumerate(names)]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_flir_adas_layouts_and_remap(tmp_path, version):
    root = tmp_path / ("FLIR_ADAS_1_3" if version == "v1" else "FLIR_ADAS_v2")
    folder = root / ("val" if version == "v1" else "images_thermal_val")
    names = ["thermal_8_bit/FLIR_08864.jpeg", "thermal_8_bit/FLIR_08865.jpeg"] if version == "v1" else \
        ["data/video-4FRnNpmSmwktFJKjg-frame-000745-g8ZCaaXFqdWEzcN5b.jpg", "data/video-ZAtDSNuZZjkZFvMAo-frame.jpg"]
    for n, name in enumerate(names):
        _gray(folder / name, 512 // 8, 640 // 8, seed=n)
    annotations = [{"id": k, "image_id": image, "category_id": cid, "bbox": [5, 5, 10, 20], "area": 200,
                    "iscrowd": 0} for k, (image, cid) in enumerate([(0, 1), (0, 3), (0, 18 if version == "v1" else 4),
                                                                  (1, 2), (1, 91 if version == "v1" else 11)])]
    data = {"images": [{"id": i, "file_name": n, "width": 80, "height": 64} for i, n in enumerate(names)],
            "annotations": annotations, "categories": _flir_categories(version)}
    _write_json(folder / ("thermal_annotations.json" if version == "v1" else "coco.json"), data)
    for given_root, given_version in [(root, version), (tmp_path, None)]:  # the folder itself or its parent
        dataset = flir_adas(given_root, "val", given_version)
        assert dataset.class_names == ["person", "bike", "car"] and dataset.category_ids == [1, 2, 3]
        assert dataset.fixes == {"other_category": 2}
        assert dataset[0][1]["labels"].tolist() == [0, 2] and dataset[1][1]["labels"].tolist() == [1]
        assert dataset.image_ids == [0, 1]
    error = (ValueError, "unknown split 'test'") if version == "v1" else (FileNotFoundError, "video_thermal_test")
    with pytest.raises(error[0], match=error[1]):
        flir_adas(root, "test", version)


def _voc(path: Path, boxes: list[tuple[str, int, int, int, int, int]], size: tuple[int, int] = (64, 48)) -> None:
    objects = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                      f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>" for n, x1, y1, x2, y2, d in boxes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{path.stem}.jpg</filename><size><width>{size[0]}</width>"
                    f"<height>{size[1]}</height><depth>3</depth></size>{objects}</annotation>")


def test_llvip_voc(tmp_path):
    root = tmp_path / "LLVIP"
    for stem in ("010001", "010002", "010003"):
        _gray(root / "infrared" / "train" / f"{stem}.jpg")
    _gray(root / "infrared" / "test" / "190001.jpg")
    _voc(root / "Annotations" / "010001.xml", [("person", 1, 1, 10, 20, 0), ("person", 30, 5, 70, 40, 0),
                                               ("car", 2, 2, 9, 9, 0), ("person", 40, 30, 50, 45, 1)])
    _voc(root / "Annotations" / "010002.xml", [])
    dataset = llvip(tmp_path, "train")
    assert dataset.image_ids == [10001, 10002, 10003] and dataset.class_names == ["person"]
    assert dataset.fixes == {"clipped": 1, "other_category": 1}
    _, target = dataset[0]  # VOC 1-based inclusive -> 0-based edges; the difficult person is a crowd region
    torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor), torch.tensor([[0.0, 0, 10, 20],
                                                                                        [29, 4, 64, 40]]))
    assert dataset.coco_ground_truth()["annotations"][2]["iscrowd"] == 1
    assert len(dataset[2][1]["boxes"]) == 0  # 010003 has no XML: a negative
    assert len(llvip(root, "test")) == 1
    (root / "Annotations" / "010002.xml").write_text("<annotation><object><name>person</name>")
    with pytest.raises(ValueError, match=r"010002\.xml: not valid XML"):
        llvip(root, "train")
    (root / "Annotations" / "010002.xml").write_text("<html><body/></html>")
    with pytest.raises(ValueError, match=r"010002\.xml: not Pascal VOC XML"):
        llvip(root, "train")
    _voc(root / "Annotations" / "010002.xml", [("person", "a", 1, 2, 3, 0)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"010002\.xml: <xmin> is 'a'"):
        llvip(root, "train")


def test_yolo_folder_16bit_and_radiometric_through_the_readers(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    gray = _gray(images / "a.png")
    counts = np.random.default_rng(3).integers(6700, 7100, (48, 64)).astype(np.uint16)
    (images / "night").mkdir()
    Image.fromarray(counts).save(images / "night" / "b.png")
    celsius = np.linspace(10, 50, 48 * 64, dtype=np.float32).reshape(48, 64)
    np.save(images / "c.npy", celsius)
    labels.mkdir()
    (labels / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n\n1 0.1 0.1 0.4 0.2\n")  # the second is clipped at 0
    (labels / "night").mkdir()
    (labels / "night" / "b.txt").write_text("1 0.5 0.5 1.0 1.0\n")
    dataset = yolo_dataset(images, labels, ["person", "car"])
    assert [r.file_name for r in dataset.records] == ["a.png", "c.npy", "night/b.png"]
    assert dataset.fixes == {"clipped": 1}
    image, target = dataset[0]
    torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor),
                               torch.tensor([[24.0, 12, 40, 36], [0, 0, 19.2, 9.6]]))
    assert torch.equal(image[0], torch.from_numpy(gray).float() / 255) and target["labels"].tolist() == [0, 1]
    assert len(dataset[1][1]["boxes"]) == 0  # no label file: a negative
    expected = DEFAULT_SCALING.to_gray(read_radiometric(images / "night" / "b.png"))  # percentile 0.5/99.5
    assert 0 < expected.mean() < 255
    assert torch.equal(dataset[2][0][1], torch.from_numpy(expected).float() / 255)
    window = yolo_dataset(images, labels, ["person", "car"], scaling="window 20..40 degC")
    expected = InputScaling.parse("window 20..40 degC").to_gray(read_radiometric(images / "c.npy"))
    assert expected[0, 0] == 0 and expected[-1, -1] == 255 and 0 < expected[24, 32] < 255  # 10..50 degC, clipped
    assert torch.equal(window[1][0][2], torch.from_numpy(expected).float() / 255)
    (labels / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n1 0.1 0.1 0.4\n")
    with pytest.raises(ValueError, match=r"a\.txt:2: 4 fields in '1 0\.1 0\.1 0\.4'"):
        yolo_dataset(images, labels, ["person", "car"])
    (labels / "a.txt").write_text("2 0.5 0.5 0.25 0.5\n")
    with pytest.raises(ValueError, match=r"a\.txt:1: class 2 is not in 0\.\.1"):
        yolo_dataset(images, labels, ["person", "car"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        yolo_dataset(empty, labels, ["person"])


def test_coco_bad_input(tmp_path):
    images_dir, ann, _ = _coco(tmp_path)
    data = json.loads(ann.read_text())

    def fails(change, match: str) -> None:
        broken = json.loads(json.dumps(data))
        change(broken)
        path = _write_json(tmp_path / "broken.json", broken)
        with pytest.raises(ValueError, match=match) as info:
            coco_dataset(images_dir, path)
        assert "broken.json" in str(info.value) and "\n" not in str(info.value)

    fails(lambda d: d["images"][1].update(file_name="missing.png"), r"image 3 \(missing\.png\) not found")
    fails(lambda d: d["annotations"][0].update(image_id=5), "annotation 1 refers to image id 5")
    fails(lambda d: d["annotations"][1].update(category_id=4), r"annotation 2 has category id 4.*\[2, 7, 90\]")
    fails(lambda d: d["annotations"][1].pop("bbox"), "needs image_id, category_id and bbox")
    fails(lambda d: d.update(images=[], annotations=[]), "empty")
    fails(lambda d: d.pop("images"), "not a COCO annotation file")
    fails(lambda d: d.pop("categories"), "no 'categories'")
    for text in ("[1, 2]", "{not json"):
        (tmp_path / "broken.json").write_text(text)
        with pytest.raises(ValueError, match=r"broken\.json: not a"):
            coco_dataset(images_dir, tmp_path / "broken.json")
    data["images"][0]["width"] = 65  # the file is 64 wide
    dataset = coco_dataset(images_dir, _write_json(tmp_path / "size.json", data))
    with pytest.raises(ValueError, match=r"a\.png: image is 64x48 but its annotation says 65x48"):
        dataset[0]


def _scene() -> tuple[np.ndarray, dict]:
    """A dark 100 x 200 frame with two bright boxes, and a box thinner than a pixel at scale 0.5."""
    gray = np.full((100, 200), 20, np.uint8)
    gray[10:50, 20:60] = 230
    gray[60:90, 120:190] = 230
    return gray, {"boxes": [[20, 10, 60, 50], [120, 60, 190, 90], [100, 0, 101.5, 100]], "labels": [0, 1, 1]}


def test_large_scale_jitter_geometry_and_counts():
    gray, target = _scene()
    small = dataset_from_arrays([gray], [target], ["a", "b"], LargeScaleJitter(128, (0.5, 0.5), flip=False))
    image, out = small[0]  # fitted into 64 x 64: factor min(64 / 100, 64 / 200) = 0.32 -> 32 x 64, padded
    assert image.shape == (3, 128, 128)
    torch.testing.assert_close(out["boxes"].as_subclass(torch.Tensor),
                               torch.tensor([[6.4, 3.2, 19.2, 16.0], [38.4, 19.2, 60.8, 28.8]]))
    assert out["labels"].tolist() == [0, 1] and out["boxes"].canvas_size == (128, 128)
    assert small.augment_counts() == {"clipped": 0, "dropped": 1}  # the third box is 0.48 px wide
    pad = float(image[0, 100, 100])
    assert image[:, 32:, :].eq(pad).all() and image[:, :, 64:].eq(pad).all()
    two = {"boxes": target["boxes"][:2], "labels": target["labels"][:2]}
    large = dataset_from_arrays([gray], [two], ["a", "b"], train_transforms(128, (2.0, 2.0)), seed=0)
    for epoch in range(4):  # 256 x 512 cropped to 128: random crops and flips, boxes follow the bright pixels
        large.set_epoch(epoch)
        image, out = large[0]
        assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
        for x1, y1, x2, y2 in out["boxes"].tolist():
            inside = image[0, int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))]
            assert inside.numel() and inside.mean() > image[0].mean()
    again = dataset_from_arrays([gray], [two], ["a", "b"], train_transforms(128, (2.0, 2.0)), seed=0)
    again.set_epoch(3)
    assert torch.equal(again[0][0], image) and torch.equal(again[0][1]["boxes"], out["boxes"])


def test_photometric_jitter_on_gray():
    gray, target = _scene()
    jitter = LargeScaleJitter(200, (1.0, 1.0), flip=False, brightness=0.5)  # 100 x 200 fits 200 x 200 as it is
    image, _ = jitter(tv_tensors.Image(torch.from_numpy(gray).float().div(255).expand(3, -1, -1)), {
        "boxes": tv_tensors.BoundingBoxes(torch.tensor(target["boxes"]), format="XYXY", canvas_size=(100, 200)),
        "labels": torch.tensor(target["labels"])}, generator=torch.Generator().manual_seed(0))
    factor = image[0, :100] / (torch.from_numpy(gray).float() / 255)  # one brightness factor for every pixel
    assert 0.5 <= float(factor[0, 0]) <= 1.5 and abs(float(factor[0, 0]) - 1) > 1e-3
    torch.testing.assert_close(factor[gray == 20], torch.full(((gray == 20).sum(),), float(factor[0, 0])))
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])


def test_augmentation_counts_over_workers_and_logged(caplog):
    gray, target = _scene()
    target = {"boxes": [[0, 0, 200, 100], [1, 1, 2, 2]], "labels": [0, 1]}  # crops always clip the first

    def run(workers: int) -> dict:
        dataset = dataset_from_arrays([gray] * 4, [target] * 4, ["a", "b"],
                                      LargeScaleJitter(32, (2.0, 2.0), flip=False), seed=1)
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers,
                                             collate_fn=detection_collate)
        assert sum(len(images) for images, _ in loader) == 4
        counts = dataset.augment_counts()
        with caplog.at_level(logging.INFO, logger="unip_hub.detection.datasets"):
            dataset.set_epoch(1)
        assert dataset.augment_counts() == {"clipped": 0, "dropped": 0}
        return counts

    # 200 x 100 fitted into 64: 64 x 32, cropped to 32 x 32: the first box is always clipped, the second (0.32 px)
    # always dropped
    assert run(0) == run(2) == {"clipped": 4, "dropped": 4}
    assert "epoch 0: 4 boxes clipped, 4 dropped" in caplog.text


def test_eval_transforms_and_arrays_errors():
    gray, target = _scene()
    dataset = dataset_from_arrays([gray], [target], ["a", "b"], eval_transforms())
    image, out = dataset[0]
    assert image.shape == (3, 100, 200) and len(out["boxes"]) == 3
    with pytest.raises(ValueError, match=r"targets\[0\]: labels \[0, 1, 5\] outside 0..1"):
        dataset_from_arrays([gray], [{"boxes": target["boxes"], "labels": [0, 1, 5]}], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        dataset_from_arrays([], [], ["a"])


def test_instance_masks_from_coco_and_arrays_follow_the_augmentation(tmp_path):
    images_dir, ann, _ = _coco(tmp_path)
    data = json.loads(ann.read_text())
    data["annotations"][0]["segmentation"] = [[4, 5, 14, 5, 14, 25, 4, 25]]  # polygon = its box: 10 x 20
    data["annotations"][1]["segmentation"] = {"size": [48, 64], "counts": [30 * 48 + 10, 5, 48 * 64 - 30 * 48 - 15]}
    data["annotations"][5]["segmentation"] = {"size": [48, 64], "counts": [5]}  # 5 pixels for a 64 x 48 image
    dataset = coco_dataset(images_dir, _write_json(tmp_path / "masks.json", data), masks=True)
    _, target = dataset[0]  # polygon, RLE (column-major: column 30, rows 10..14) and no segmentation (the box)
    masks = target["masks"]
    assert isinstance(masks, tv_tensors.Mask) and masks.shape == (3, 48, 64) and masks.dtype == torch.uint8
    assert masks[0].sum() == 200 and masks[0, 5:25, 4:14].all()
    assert masks[1].sum() == 5 and masks[1, 10:15, 30].all()
    assert masks[2].sum() == 14 * 8 and masks[2, 40:, 50:].all()
    with pytest.raises(ValueError, match=r"c\.png box 0: segmentation is not COCO polygons or RLE"):
        dataset[2]
    gray, target = _scene()
    target = {"boxes": target["boxes"][:2], "labels": [0, 1],
              "masks": np.stack([np.asarray(gray == 230) & (np.arange(200) < 100), np.asarray(gray == 230)
                                 & (np.arange(200) >= 100)]).astype(np.uint8)}
    arrays = dataset_from_arrays([gray], [target], ["a", "b"], train_transforms(96, (1.0, 2.0)), seed=0)
    for epoch in range(3):
        arrays.set_epoch(epoch)
        _, out = arrays[0]
        for box, mask in zip(out["boxes"].tolist(), out["masks"], strict=True):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert abs(xs.min() - box[0]) <= 1 and abs(xs.max() + 1 - box[2]) <= 1
            assert abs(ys.min() - box[1]) <= 1 and abs(ys.max() + 1 - box[3]) <= 1


def test_subset_has_its_own_ground_truth(tmp_path):
    images_dir, ann, _ = _coco(tmp_path)
    dataset = coco_dataset(images_dir, ann)
    part = dataset.subset([2, 0])
    assert part.image_ids == [900, 17] and len(part) == 2 and part.fixes == dataset.fixes
    assert [im["id"] for im in part.coco_ground_truth()["images"]] == [900, 17]
    assert part[0][1]["image_id"] == 900




@pytest.mark.skipif(shared_samples() is None, reason="shared/thermal-samples not present")
def test_real_radiometric_files_as_yolo_dataset(tmp_path):
    pytest.importorskip("flyr")
    samples = shared_samples()
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for name in ("rjpeg/flir_example.jpg", "example_radiometric.tiff"):
        (images / Path(name).name).symlink_to(samples / name)
        (labels / Path(name).with_suffix(".txt").name).write_text("0 0.5 0.5 0.5 0.5\n")
    dataset = yolo_dataset(images, labels, ["hot"], scaling="window 20..70 degC")
    record = dataset.records[1]  # the R-JPEG: boxes in its 240 x 320 raw thermal frame, not the 480 x 640 picture
    assert (record.width, record.height) == (240, 320) and record.boxes.tolist() == [[60.0, 80.0, 180.0, 240.0]]
    image, target = dataset[1]
    frame = read_radiometric(images / "flir_example.jpg")
    assert image.shape == (3, 320, 240)
    assert torch.equal(image[0], torch.from_numpy(InputScaling.parse("window 20..70 degC").to_gray(frame)) / 255)
    counts = yolo_dataset(images, labels, ["hot"])  # the 16-bit TIFF: percentile 0.5/99.5 of its counts
    image, target = counts[0]
    expected = DEFAULT_SCALING.to_gray(read_radiometric(images / "example_radiometric.tiff"))
    assert image.shape == (3, 512, 640) and torch.equal(image[1], torch.from_numpy(expected).float() / 255)
    assert target["boxes"].tolist() == [[160.0, 128.0, 480.0, 384.0]]
