# exports: DetectionIndex, DetectionRecord, parse_coco, parse_voc_folder, parse_yolo_folder, FLIR_CLASSES
"""Box annotation files read into one in-memory index: COCO JSON, Pascal VOC XML folders, YOLO txt folders.

Every parser returns a :class:`DetectionIndex`: one :class:`DetectionRecord` per image (its boxes in absolute XYXY
pixels, labels 0..K-1, crowd flags), the class names and the original category id of each label. The rules:

* Image ids and category ids are taken as the file gives them (any integers, in any order, with gaps); labels are
  the position of the category in ``categories`` sorted by id (or in the given ``keep`` mapping).
* ``iscrowd`` annotations (COCO) and ``difficult`` objects (VOC) are kept as crowd regions: ignored by the
  evaluation, never trained on as positives.
* Images without annotations are kept (negatives).
* COCO ``segmentation`` (polygons or RLE) is kept per box when asked (``masks=True``), for instance masks.
* Boxes partly outside their image are clipped to it; boxes of zero size (before or after clipping) are dropped.
  Both are counted in :attr:`DetectionIndex.fixes` (and logged by the dataset), so the annotation can be fixed.
* Anything else that is wrong (a file that is not COCO, an annotation of a missing image, an unknown category id,
  an image file that does not exist, a YOLO line without 5 fields, a VOC file that is not VOC XML, no images at
  all) raises a one-line :class:`ValueError` naming the file and the entry.

VOC boxes are 1-based inclusive pixel indices (``xmin=1`` is the first column): they become ``xmin - 1, ymin - 1,
xmax, ymax`` in 0-based pixel-edge coordinates, as detectron2's and torchvision's VOC readers do.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unip_hub.constants import INPUT_EXTENSIONS
from unip_hub.utils.files import list_files

__all__ = ["FLIR_CLASSES", "BoxCollector", "DetectionIndex", "DetectionRecord", "parse_coco", "parse_voc_folder",
           "parse_yolo_folder"]

PathLike = str | os.PathLike
FLIR_CLASSES: dict[int, str] = {1: "person", 2: "bike", 3: "car"}
"""The reference recipe's FLIR ADAS classes: category ids 1, 2, 3 -> labels 0, 1, 2; every other id dropped."""


@dataclass
class DetectionRecord:
    """One image and its boxes.

    Attributes:
        image_id: The image's id as the annotation file gives it (any integer).
        source: Image file, or an in-memory array (``dataset_from_arrays``).
        width: Image width in pixels.
        height: Image height in pixels.
        boxes: float64 (N, 4) XYXY absolute pixels, inside the image, positive size.
        labels: int64 (N,) 0..K-1.
        iscrowd: int64 (N,) 1 for crowd / ignore regions.
        areas: float64 (N,) COCO ``area`` (the file's, else the box's), used by the evaluation's size ranges.
        file_name: The name the annotation file gives the image (COCO ``file_name``).
        segmentations: Per box, its instance mask as COCO gives it (polygons or RLE; None: the box) or an (H, W)
            array; None when the dataset reads no masks.
    """

    image_id: int
    source: Path | np.ndarray
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    areas: np.ndarray
    file_name: str = ""
    segmentations: list | None = None


@dataclass
class DetectionIndex:
    """Parsed annotations: records, classes and the counted fixes (see the module docstring)."""

    records: list[DetectionRecord]
    class_names: list[str]
    category_ids: list[int]
    source: str
    fixes: Counter = field(default_factory=Counter)


class BoxCollector:
    """Collects the boxes of one image (``width`` x ``height``), clipping them and counting the fixes in ``fixes``."""

    def __init__(self, width: int, height: int, fixes: Counter, masks: bool = False) -> None:
        self.width, self.height, self.fixes, self.masks = width, height, fixes, masks
        self.segmentations: list = []
        self.boxes: list[list[float]] = []
        self.labels: list[int] = []
        self.crowd: list[int] = []
        self.areas: list[float] = []

    def add(self, x1: float, y1: float, x2: float, y2: float, label: int, crowd: bool = False,
            area: float | None = None, segmentation: object = None) -> None:
        if not all(np.isfinite((x1, y1, x2, y2))):
            self.fixes["dropped"] += 1
            return
        cx1, cy1 = min(max(x1, 0.0), self.width), min(max(y1, 0.0), self.height)
        cx2, cy2 = min(max(x2, 0.0), self.width), min(max(y2, 0.0), self.height)
        if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
            self.fixes["dropped"] += 1
            return
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
            self.fixes["clipped"] += 1
        self.boxes.append([cx1, cy1, cx2, cy2])
        self.labels.append(label)
        self.crowd.append(int(bool(crowd)))
        self.areas.append(float(area) if area is not None and area > 0 else (cx2 - cx1) * (cy2 - cy1))
        self.segmentations.append(segmentation)

    def record(self, image_id: int, source: Path | np.ndarray, file_name: str = "") -> DetectionRecord:
        return DetectionRecord(
            image_id, source, self.width, self.height,
            np.asarray(self.boxes, np.float64).reshape(-1, 4), np.asarray(self.labels, np.int64),
            np.asarray(self.crowd, np.int64), np.asarray(self.areas, np.float64), file_name,
            self.segmentations if self.masks else None)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or \
            not isinstance(data.get("annotations", []), list):
        keys = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: not a COCO annotation file (expected 'images', 'annotations' and 'categories' "
                         f"lists; found {keys})")
    return data


def _coco_categories(data: dict, path: Path, keep: Mapping[int, str] | None) -> dict[int, tuple[int, str]]:
    """Original category id -> (label, name)."""
    if keep is not None:
        return {int(cid): (label, name) for label, (cid, name) in enumerate(keep.items())}
    categories = data.get("categories")
    if not isinstance(categories, list) or not categories:
        raise ValueError(f"{path}: not a COCO annotation file (no 'categories' list); list the categories as "
                         "[{'id': 1, 'name': 'person'}, ...]")
    try:
        ordered = sorted((int(c["id"]), str(c.get("name", c["id"]))) for c in categories)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: a category without an integer 'id' ({error})") from error
    ids = [cid for cid, _ in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: category ids repeat: {sorted(k for k, n in Counter(ids).items() if n > 1)}")
    return {cid: (label, name) for label, (cid, name) in enumerate(ordered)}


def parse_coco(ann_file: PathLike, images_dir: PathLike, keep: Mapping[int, str] | None = None,
               check_files: bool = True, masks: bool = False) -> DetectionIndex:
    """Read a COCO detection JSON.

    Args:
        ann_file: The JSON file.
        images_dir: Folder that the images' ``file_name`` entries are relative to.
        keep: Original category id -> class name of the classes to keep (e.g. :data:`FLIR_CLASSES`); others are
            dropped (counted as ``other_category``). None: every category in the file, in id order; an
            annotation of a category not listed is then an error.
        check_files: Check that every image file exists.
        masks: Keep each annotation's ``segmentation`` (polygons / RLE) for instance masks (Mask R-CNN).

    Returns:
        The index, one record per image of the file (with or without boxes).
    """
    path, images_dir = Path(ann_file), Path(images_dir)
    data = _load_json(path)
    categories = _coco_categories(data, path, keep)
    fixes: Counter = Counter()
    images: dict[int, tuple[str, BoxCollector]] = {}
    for entry in data["images"]:
        try:
            image_id, width, height = int(entry["id"]), int(entry["width"]), int(entry["height"])
            name = str(entry["file_name"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: image entry {str(entry)[:120]} lacks an integer id, width, height or a "
                             f"file_name ({error})") from error
        if image_id in images:
            raise ValueError(f"{path}: image id {image_id} appears twice")
        images[image_id] = (name, BoxCollector(width, height, fixes, masks))
    for ann in data.get("annotations", []):
        try:
            ann_id, image_id, cid = ann.get("id"), int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: annotation {str(ann)[:120]} needs image_id, category_id and bbox [x, y, w, h] "
                             f"({error})") from error
        if image_id not in images:
            raise ValueError(f"{path}: annotation {ann_id} refers to image id {image_id}, which is not in 'images'")
        if cid not in categories:
            if keep is not None:
                fixes["other_category"] += 1
                continue
            raise ValueError(f"{path}: annotation {ann_id} has category id {cid}, which is not in 'categories' "
                             f"(ids {sorted(categories)})")
        area = ann.get("area")
        images[image_id][1].add(x, y, x + w, y + h, categories[cid][0], bool(ann.get("iscrowd", 0)),
                                float(area) if isinstance(area, (int, float)) else None, ann.get("segmentation"))
    records = []
    for image_id, (name, boxes) in images.items():
        file = images_dir / name
        if check_files and not file.is_file():
            raise ValueError(f"{path}: image {image_id} ({name}) not found at {file}")
        records.append(boxes.record(image_id, file, name))
    if not records:
        raise ValueError(f"{path}: the dataset is empty (no images)")
    names = [name for _, name in sorted(categories.values())]
    ids = [cid for cid, _ in sorted(categories.items(), key=lambda item: item[1][0])]
    return DetectionIndex(records, names, ids, str(path), fixes)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the frame the dataset reads: from the file's header (no decoding), ``.npy`` from its
    shape, a FLIR R-JPEG from its raw thermal frame (smaller than the picture the JPEG shows)."""
    if path.suffix.lower() == ".npy":
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        return int(shape[1]), int(shape[0])
    from unip_hub.data.radiometric import flir_kind, read_radiometric

    if flir_kind(path) == "flir":
        height, width = read_radiometric(path).shape
        return width, height
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise ValueError(f"{path}: not a readable image ({error})") from error


def parse_yolo_folder(images_dir: PathLike, labels_dir: PathLike, class_names: Sequence[str]) -> DetectionIndex:
    """Read a folder of images and YOLO txt labels (one ``class cx cy w h`` line per box, normalised to 0..1).

    Labels are matched by path relative to the folders with the suffix ``.txt``; an image without a label file
    is a negative. Category ids are the YOLO class numbers.
    """
    images_dir, labels_dir = _require_dir(Path(images_dir), "image folder"), _require_dir(Path(labels_dir),
                                                                                         "label folder")
    fixes: Counter = Counter()
    records = []
    for image_id, image in enumerate(list_files(images_dir, INPUT_EXTENSIONS)):
        relative = image.relative_to(images_dir)
        width, height = _image_size(image)
        boxes = BoxCollector(width, height, fixes)
        label_file = (labels_dir / relative).with_suffix(".txt")
        if label_file.is_file():
            for number, line in enumerate(label_file.read_text().splitlines(), start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 5:
                    raise ValueError(f"{label_file}:{number}: {len(fields)} fields in {line.strip()!r}; a YOLO label "
                                     "line is 'class cx cy w h' (5 numbers, coordinates 0..1)")
                try:
                    cls, (cx, cy, w, h) = int(fields[0]), (float(v) for v in fields[1:])
                except ValueError as error:
                    raise ValueError(f"{label_file}:{number}: {line.strip()!r} is not 'class cx cy w h'") from error
                if not 0 <= cls < len(class_names):
                    raise ValueError(f"{label_file}:{number}: class {cls} is not in 0..{len(class_names) - 1} "
                                     f"({list(class_names)})")
                boxes.add((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height,
                          cls)
        records.append(boxes.record(image_id, image, relative.as_posix()))
    if not records:
        raise ValueError(f"{images_dir}: the dataset is empty (no images with endings {INPUT_EXTENSIONS})")
    return DetectionIndex(records, list(class_names), list(range(len(class_names))), str(labels_dir), fixes)


def _voc_number(node: ET.Element, tag: str, file: Path) -> float:
    text = node.findtext(tag)
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{file}: <{tag}> is {text!r}, not a number") from error


def parse_voc_folder(images: Sequence[Path], annotations_dir: PathLike, class_names: Sequence[str]) -> DetectionIndex:
    """Read Pascal VOC XML boxes (``<annotations_dir>/<image stem>.xml``) of ``images``.

    Objects of classes not in ``class_names`` are dropped (counted as ``other_category``); ``difficult`` objects
    are crowd regions. An image without an XML file is a negative. Image ids are the numeric file stems when all
    are numbers (LLVIP: ``010001``), else positions.
    """
    annotations_dir = _require_dir(Path(annotations_dir), "annotation folder")
    classes = {name: label for label, name in enumerate(class_names)}
    numeric = all(p.stem.isdigit() for p in images) and len({int(p.stem) for p in images}) == len(images)
    fixes: Counter = Counter()
    records = []
    for position, image in enumerate(images):
        xml = annotations_dir / f"{image.stem}.xml"
        if not xml.is_file():
            width, height = _image_size(image)
            records.append(BoxCollector(width, height, fixes).record(int(image.stem) if numeric else position, image,
                                                                 image.name))
            continue
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as error:
            raise ValueError(f"{xml}: not valid XML ({error})") from error
        if root.tag != "annotation":
            raise ValueError(f"{xml}: not Pascal VOC XML (root <{root.tag}>, expected <annotation>)")
        size = root.find("size")
        width, height = (int(_voc_number(size, "width", xml)), int(_voc_number(size, "height", xml))) \
            if size is not None else (0, 0)
        if width <= 0 or height <= 0:  # no <size>, or the 0 x 0 some tools write: the image's own
            width, height = _image_size(image)
        boxes = BoxCollector(width, height, fixes)
        for obj in root.iter("object"):
            name, box = (obj.findtext("name") or "").strip(), obj.find("bndbox")
            if box is None:
                raise ValueError(f"{xml}: object {name!r} has no <bndbox>")
            if name not in classes:
                fixes["other_category"] += 1
                continue
            x1, y1, x2, y2 = (_voc_number(box, tag, xml) for tag in ("xmin", "ymin", "xmax", "ymax"))
            difficult = (obj.findtext("difficult") or "0").strip() == "1"
            boxes.add(x1 - 1, y1 - 1, x2, y2, classes[name], difficult)
        records.append(boxes.record(int(image.stem) if numeric else position, image, image.name))
    if not records:
        raise ValueError(f"{annotations_dir}: the dataset is empty (no images)")
    return DetectionIndex(records, list(class_names), list(range(1, len(class_names) + 1)), str(annotations_dir),
                          fixes)
