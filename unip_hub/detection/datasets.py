# exports: DetectionDataset, coco_dataset, flir_adas, llvip, yolo_dataset, dataset_from_arrays, detection_collate
"""Detection datasets: images read as the model reads them, boxes as ``tv_tensors``, fixes counted and logged.

Each item is ``(image, target)``: ``image`` a ``tv_tensors.Image`` float32 (3, H, W) in 0..1 (the 8-bit gray of the
input scaling, /255, copied to 3 channels), ``target`` a dict with ``boxes`` (``tv_tensors.BoundingBoxes`` XYXY,
absolute pixels), ``labels`` int64 (N,) 0..K-1, ``iscrowd`` int64 (N,) zeros, ``area`` float32 (N,) and
``image_id`` (the annotation file's id), plus ``masks`` (``tv_tensors.Mask`` uint8 (N, H, W)) when the dataset
reads instance masks. Crowd / ignore regions are left out of the target (they are never trained on as positives)
and kept in :meth:`DetectionDataset.coco_ground_truth`, where the evaluation ignores them.

Training loops call :meth:`DetectionDataset.set_epoch` at the start of each epoch: it selects the epoch's seeded
augmentation and logs the boxes the augmentation clipped / dropped in the epoch before (counted over all
DataLoader workers). Fixes made to the annotations themselves are logged once, when the dataset is built.

Images go through the readers and the input-scaling spec segmentation uses
(:func:`unip_hub.data.radiometric.read_radiometric`, :meth:`unip_hub.data.scaling.InputScaling.to_gray`): 8-bit,
16-bit and radiometric files alike.

Layouts of the presets (``root`` may also be the folder above the named one):

* FLIR ADAS v1 (``FLIR_ADAS_1_3``): ``<root>/{train,val}/thermal_annotations.json`` whose ``file_name`` entries
  are ``thermal_8_bit/FLIR_xxxxx.jpeg`` relative to the split folder.
* FLIR ADAS v2 (``FLIR_ADAS_v2``): ``<root>/images_thermal_{train,val}/coco.json`` (``file_name``:
  ``data/*.jpg``), and ``video_thermal_test`` for ``split="test"``.
* LLVIP: ``<root>/infrared/{train,test}/*.jpg`` and ``<root>/Annotations/<stem>.xml`` (VOC, class ``person``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .formats import FLIR_CLASSES, BoxCollector, DetectionIndex, parse_coco, parse_voc_folder, parse_yolo_folder

__all__ = ["DetectionDataset", "coco_dataset", "dataset_from_arrays", "detection_collate", "flir_adas", "llvip",
           "yolo_dataset"]

logger = logging.getLogger(__name__)
PathLike = str | os.PathLike
Transform = Callable[..., tuple[Any, dict]]
AUGMENT_KEYS = ("clipped", "dropped")
_ROWS = 129  # row 0: the main process, row 1 + i: DataLoader worker i


def _worker_row() -> int:
    info = torch.utils.data.get_worker_info()
    return 0 if info is None else 1 + info.id % (_ROWS - 1)


class DetectionDataset(Dataset):
    """Images and boxes of a :class:`~unip_hub.detection.formats.DetectionIndex`, read and augmented.

    Args:
        index: The parsed annotations.
        transforms: ``transforms(image, target) -> (image, target)`` (e.g. :func:`train_transforms`); None: as read.
        scaling: Input-scaling spec (``InputScaling`` or its text); None: ``percentile 0.5/99.5`` (8-bit files as
            they are).
        calibration: Radiometric :class:`~unip_hub.data.frame.Calibration` (counts, units, FLIR parameters).
        seed: Makes the augmentation of each (epoch, index) reproducible (see :meth:`set_epoch`); None: fresh.

    Attributes:
        class_names: Name of each label 0..K-1.
        category_ids: Original category id of each label (for COCO-results files).
        image_ids: Original id of each image, in item order.
        fixes: Annotation fixes made when reading: ``clipped`` (boxes partly outside the image), ``dropped``
            (zero-size boxes), ``other_category`` (classes a preset does not keep). Logged at build.
    """

    def __init__(self, index: DetectionIndex, transforms: Transform | None = None, scaling: Any = None,
                 calibration: Any = None, seed: int | None = None) -> None:
        from unip_hub.data.scaling import DEFAULT_SCALING, InputScaling

        self.index = index
        self.records = index.records
        self.class_names = list(index.class_names)
        self.category_ids = list(index.category_ids)
        self.image_ids = [r.image_id for r in self.records]
        self.fixes = dict(index.fixes)
        self.transforms = transforms
        self.scaling = DEFAULT_SCALING if scaling is None else InputScaling.parse(scaling)
        self.calibration = calibration
        self.seed = seed
        self.epoch = 0
        self._augment = torch.zeros(_ROWS, len(AUGMENT_KEYS), dtype=torch.int64).share_memory_()  # (rows, 2)
        self._ground_truth: dict | None = None
        if self.fixes:
            logger.warning("%s: annotation fixes: %s (fix these annotations to silence this)", index.source,
                           ", ".join(f"{k} {v}" for k, v in sorted(self.fixes.items())))

    @property
    def num_classes(self) -> int:
        """Number of object classes K (no background)."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, indices: Sequence[int]) -> DetectionDataset:
        """The items ``indices`` as a dataset of their own (its ground truth holds only those images, so an
        evaluation of a part of a set is right; a ``torch.utils.data.Subset`` would keep the whole ground truth)."""
        from dataclasses import replace

        index = replace(self.index, records=[self.records[i] for i in indices], fixes=Counter())
        subset = DetectionDataset(index, self.transforms, self.scaling, self.calibration, self.seed)
        subset.fixes = dict(self.fixes)
        return subset

    def read_gray(self, index: int) -> np.ndarray:
        """Image ``index`` as the model's 8-bit gray, uint8 (H, W)."""
        from unip_hub.data.radiometric import read_radiometric

        record = self.records[index]
        gray = self.scaling.to_gray(read_radiometric(record.source, self.calibration))
        if gray.shape != (record.height, record.width):
            name = record.source if isinstance(record.source, Path) else f"array {index}"
            raise ValueError(f"{name}: image is {gray.shape[1]}x{gray.shape[0]} but its annotation says "
                             f"{record.width}x{record.height} (width x height); annotate in the pixels of the frame "
                             "read (for R-JPEGs the raw thermal frame, not the picture shown)")
        return gray

    def _masks(self, index: int, keep: np.ndarray) -> torch.Tensor:
        """Instance masks of the boxes ``keep`` of image ``index``: a ``tv_tensors.Mask`` (N, H, W) uint8."""
        from torchvision import tv_tensors

        record = self.records[index]
        masks = torch.zeros(len(keep), record.height, record.width, dtype=torch.uint8)  # (N, H, W)
        for row, k in enumerate(keep.tolist()):
            masks[row] = torch.from_numpy(_instance_mask(record.segmentations[k], record.boxes[k], record.width,
                                                         record.height, f"{record.file_name} box {k}"))
        return tv_tensors.Mask(masks)

    def _generator(self, index: int) -> torch.Generator | None:
        if self.seed is None:
            return None
        state = np.random.SeedSequence((self.seed, self.epoch, index)).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        from torchvision import tv_tensors

        record = self.records[index]
        gray = torch.from_numpy(self.read_gray(index))  # (H, W) uint8
        image = tv_tensors.Image(gray.float().div_(255).expand(3, -1, -1).contiguous())  # (3, H, W)
        keep = record.iscrowd == 0
        boxes = tv_tensors.BoundingBoxes(torch.from_numpy(record.boxes[keep]).float(), format="XYXY",
                                         canvas_size=(record.height, record.width))  # (N, 4)
        target = {"boxes": boxes, "labels": torch.from_numpy(record.labels[keep]).long(),
                  "image_id": record.image_id}
        if record.segmentations is not None:
            target["masks"] = self._masks(index, np.flatnonzero(keep))  # (N, H, W) uint8
        if self.transforms is not None:
            image, target = self._transform(image, target, index)
        boxes = target["boxes"]
        target["iscrowd"] = torch.zeros(len(boxes), dtype=torch.int64)
        target["area"] = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).as_subclass(torch.Tensor)
        return image, target

    def _transform(self, image: torch.Tensor, target: dict, index: int) -> tuple[torch.Tensor, dict]:
        from .transforms import DetectionTransform

        if isinstance(self.transforms, DetectionTransform):
            counts: Counter = Counter()
            image, target = self.transforms(image, target, generator=self._generator(index), counts=counts)
        else:  # any (image, target) callable, e.g. a transforms.v2.Compose: only removed boxes can be counted
            before = len(target["boxes"])
            image, target = self.transforms(image, target)
            counts = Counter(dropped=before - len(target["boxes"]))
        row = self._augment[_worker_row()]
        for column, key in enumerate(AUGMENT_KEYS):
            row[column] += counts.get(key, 0)
        return image, target

    def augment_counts(self) -> dict[str, int]:
        """Boxes clipped and dropped by the augmentation since the last :meth:`set_epoch`, over all workers."""
        totals = self._augment.sum(0)
        return {key: int(totals[column]) for column, key in enumerate(AUGMENT_KEYS)}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations a seeded dataset reproduces; logs and resets the counts of boxes
        clipped / dropped by the augmentation in the epoch before."""
        counts = self.augment_counts()
        if any(counts.values()):
            logger.info("detection augmentation, epoch %d: %d boxes clipped, %d dropped (degenerate after crop / "
                        "resize)", self.epoch, counts["clipped"], counts["dropped"])
        self._augment.zero_()
        self.epoch = epoch

    def coco_ground_truth(self) -> dict:
        """The annotations as a COCO dict (original image and category ids, crowd regions with ``iscrowd: 1``)."""
        if self._ground_truth is None:
            images, annotations = [], []
            for record in self.records:
                images.append({"id": record.image_id, "width": record.width, "height": record.height,
                               "file_name": record.file_name})
                for k, (box, label, crowd, area) in enumerate(zip(record.boxes.tolist(), record.labels.tolist(),
                                                                  record.iscrowd.tolist(), record.areas.tolist(),
                                                                  strict=True)):
                    annotations.append({"id": len(annotations) + 1, "image_id": record.image_id,
                                        "category_id": self.category_ids[label], "iscrowd": crowd, "area": area,
                                        "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
                    if record.segmentations is not None:  # instance masks: the mask AP's ground truth
                        mask = _instance_mask(record.segmentations[k], record.boxes[k], record.width,
                                              record.height, f"{record.file_name} box {k}")
                        annotations[-1]["segmentation"] = mask_rle(mask)
            categories = [{"id": cid, "name": name} for cid, name in zip(self.category_ids, self.class_names,
                                                                          strict=True)]
            self._ground_truth = {"images": images, "annotations": annotations, "categories": categories}
        return self._ground_truth


def mask_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO run-length encoding of a binary (H, W) mask, with its ``counts`` as text (JSON-ready)."""
    from faster_coco_eval.core import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")
            if isinstance(rle["counts"], bytes) else rle["counts"]}


def _instance_mask(segmentation: Any, box: np.ndarray, width: int, height: int, name: str) -> np.ndarray:
    """uint8 (H, W) mask of one instance: an array as it is, COCO polygons / RLE decoded, None filled from the box."""
    if segmentation is None or (isinstance(segmentation, list) and not segmentation):
        mask = np.zeros((height, width), np.uint8)
        x1, y1, x2, y2 = np.floor(box[:2]).astype(int).tolist() + np.ceil(box[2:]).astype(int).tolist()
        mask[y1:y2, x1:x2] = 1
        return mask
    if isinstance(segmentation, np.ndarray):
        if segmentation.shape != (height, width):
            raise ValueError(f"{name}: mask of shape {segmentation.shape}, expected {(height, width)}")
        return (segmentation != 0).astype(np.uint8)
    from faster_coco_eval.core import mask as coco_mask

    try:
        return np.ascontiguousarray(coco_mask.decode(coco_mask.segmToRle(segmentation, width, height)), np.uint8)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{name}: segmentation is not COCO polygons or RLE ({error})") from error


def detection_collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """``[(image, target), ...]`` -> ``([image, ...], [target, ...])`` (sizes differ: no stacking)."""
    return [image for image, _ in batch], [target for _, target in batch]


def coco_dataset(images_dir: PathLike, ann_file: PathLike, transforms: Transform | None = None, scaling: Any = None,
                 calibration: Any = None, *, seed: int | None = None, keep: dict[int, str] | None = None,
                 masks: bool = False) -> DetectionDataset:
    """Any COCO detection JSON; ``file_name`` entries relative to ``images_dir``. ``keep`` (category id -> name)
    keeps only those classes, in that order; ``masks`` adds the instance masks (``target["masks"]``, from the
    polygons / RLE; the box where an annotation has none). See :func:`unip_hub.detection.formats.parse_coco`."""
    return DetectionDataset(parse_coco(ann_file, images_dir, keep, masks=masks), transforms, scaling, calibration,
                            seed)


def _descend(root: Path, name: str, marker: str) -> Path:
    """``root`` itself when it holds ``marker``, else ``root/name`` when that does."""
    if not (root / marker).exists() and (root / name / marker).exists():
        return root / name
    return root


FLIR_LAYOUTS = {
    "v1": ("FLIR_ADAS_1_3", {"train": "train", "val": "val"}, "thermal_annotations.json"),
    "v2": ("FLIR_ADAS_v2", {"train": "images_thermal_train", "val": "images_thermal_val",
                            "test": "video_thermal_test"}, "coco.json"),
}


def flir_adas(root: PathLike, split: str = "train", version: str | None = None, transforms: Transform | None = None,
              scaling: Any = None, calibration: Any = None, *, seed: int | None = None) -> DetectionDataset:
    """FLIR ADAS thermal images with the reference recipe's classes: person, bike, car (ids 1, 2, 3; others dropped).

    Args:
        root: ``FLIR_ADAS_1_3`` (v1) or ``FLIR_ADAS_v2`` (v2), or the folder holding it.
        split: ``"train"`` or ``"val"`` (v2 also ``"test"``: the video test frames).
        version: ``"v1"``, ``"v2"`` or None (whichever layout ``root`` has).
    """
    root = Path(root)
    if version is None:
        found = [v for v, (name, splits, ann) in FLIR_LAYOUTS.items()
                 if (_descend(root, name, splits["train"]) / splits["train"] / ann).is_file()
                 or (_descend(root, name, splits["val"]) / splits["val"] / ann).is_file()]
        if not found:
            raise FileNotFoundError(f"{root}: neither FLIR ADAS layout found (v1: train/thermal_annotations.json, "
                                    "v2: images_thermal_train/coco.json)")
        version = found[0]
    if version not in FLIR_LAYOUTS:
        raise ValueError(f"FLIR ADAS version must be 'v1' or 'v2', got {version!r}")
    name, splits, ann = FLIR_LAYOUTS[version]
    if split not in splits:
        raise ValueError(f"FLIR ADAS {version}: unknown split {split!r}; expected one of {sorted(splits)}")
    folder = _descend(root, name, splits[split]) / splits[split]
    return coco_dataset(folder, folder / ann, transforms, scaling, calibration, seed=seed, keep=FLIR_CLASSES)


def llvip(root: PathLike, split: str = "train", transforms: Transform | None = None, scaling: Any = None,
          calibration: Any = None, *, seed: int | None = None) -> DetectionDataset:
    """LLVIP's infrared images with their VOC XML person boxes (``root``: ``LLVIP`` or the folder holding it)."""
    from unip_hub.utils.files import list_files

    if split not in ("train", "test"):
        raise ValueError(f"LLVIP: unknown split {split!r}; expected 'train' or 'test'")
    root = _descend(Path(root), "LLVIP", "Annotations")
    folder = root / "infrared" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"LLVIP infrared images not found: {folder}")
    images = list_files(folder, (".jpg", ".jpeg", ".png"), recursive=False)
    if not images:
        raise ValueError(f"{folder}: the dataset is empty (no .jpg images)")
    return DetectionDataset(parse_voc_folder(images, root / "Annotations", ["person"]), transforms, scaling,
                            calibration, seed)


def yolo_dataset(images_dir: PathLike, labels_dir: PathLike, class_names: Sequence[str],
                 transforms: Transform | None = None, scaling: Any = None, calibration: Any = None, *,
                 seed: int | None = None) -> DetectionDataset:
    """A folder of images and YOLO txt labels (``class cx cy w h``, normalised; matched by relative path)."""
    return DetectionDataset(parse_yolo_folder(images_dir, labels_dir, class_names), transforms, scaling,
                            calibration, seed)


def dataset_from_arrays(images: Sequence[np.ndarray], targets: Sequence[dict], class_names: Sequence[str],
                        transforms: Transform | None = None, scaling: Any = None, *, seed: int | None = None
                        ) -> DetectionDataset:
    """An in-memory dataset (synthetic scenes, tests).

    Args:
        images: Frames (H, W): uint8 gray, or counts / temperatures for the input scaling.
        targets: Per image: ``boxes`` (N, 4) XYXY absolute pixels, ``labels`` (N,) 0..K-1, optional ``iscrowd``
            and ``masks`` (N, H, W) (then every image's target has masks, as from
            :func:`unip_hub.data.instances.instances_from_label`).
        class_names: Name of each label; category ids are 1..K.

    Returns:
        The dataset; image ids are the positions 0..len-1.
    """
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    if not images:
        raise ValueError("the dataset is empty (no images)")
    fixes: Counter = Counter()
    records = []
    with_masks = "masks" in targets[0]
    for i, (image, target) in enumerate(zip(images, targets, strict=True)):
        image = np.asarray(image)
        if image.ndim != 2:
            raise ValueError(f"images[{i}] has shape {image.shape}; pass one (H, W) frame per image")
        boxes = np.asarray(target.get("boxes", []), np.float64).reshape(-1, 4)  # (N, 4)
        labels = np.asarray(target.get("labels", []), np.int64).reshape(-1)
        crowd = np.asarray(target.get("iscrowd", np.zeros(len(labels))), np.int64).reshape(-1)
        if len(labels) != len(boxes) or len(crowd) != len(boxes):
            raise ValueError(f"targets[{i}]: {len(boxes)} boxes, {len(labels)} labels, {len(crowd)} iscrowd flags")
        if len(labels) and not (0 <= labels.min() and labels.max() < len(class_names)):
            raise ValueError(f"targets[{i}]: labels {sorted(set(labels.tolist()))} outside 0..{len(class_names) - 1}")
        if with_masks != ("masks" in target):
            raise ValueError(f"targets[{i}]: give masks for every image or for none")
        masks = list(np.asarray(target["masks"]).reshape(-1, *image.shape)) if with_masks else [None] * len(boxes)
        if len(masks) != len(boxes):
            raise ValueError(f"targets[{i}]: {len(boxes)} boxes but {len(masks)} masks of {image.shape}")
        collected = BoxCollector(image.shape[1], image.shape[0], fixes, with_masks)
        for box, label, flag, mask in zip(boxes.tolist(), labels.tolist(), crowd.tolist(), masks, strict=True):
            collected.add(*box, label, bool(flag), segmentation=mask)
        records.append(collected.record(i, image, f"{i}.png"))
    index = DetectionIndex(records, list(class_names), list(range(1, len(class_names) + 1)), "arrays", fixes)
    return DetectionDataset(index, transforms, scaling, None, seed)
