"""Datasets for UNIP: the three segmentation benchmarks, a generic folder, and the unlabelled pre-training data.

Segmentation (reference section 5; folders and split files exactly as the research code reads them):

* :class:`SODADataset`: ``JPEGImages/*.jpg``, ``SegmentationClassPNG/*.png``, ``train_infrared.txt`` /
  ``test_infrared.txt``; 21 classes.
* :class:`MFNetDataset`: ``thermal_imgs/*.png`` (or, when that folder is absent, the original 4-channel
  ``images/*.png`` whose channel 3 is the thermal image), ``labels/*.png``, ``train.txt`` / ``val_test.txt``; 9 classes.
* :class:`SCUTSegDataset`: ``images/*.jpg``, ``labels/*.png``, ``train.txt`` / ``val.txt``; 10 classes.
* :class:`FolderSegDataset`: any ``images_dir`` + ``labels_dir`` matched by file stem.

Each item is ``(image float32 (3, H, W) normalised, label int64 (H, W))`` after the given pipeline (see
:mod:`unip_hub.data.transforms`). Split files list one file stem per line. With a ``seed``, the random
augmentation of item ``i`` in epoch ``e`` (see ``set_epoch``) is fixed, and safe across DataLoader workers.

Pre-training (section 3): :class:`ImageFolderDataset` and :class:`InfMixDataset` yield gray images copied to
three channels (PIL ``RGB``) through a user ``transform``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from unip_hub.constants import IMAGE_EXTENSIONS, INPUT_EXTENSIONS
from unip_hub.data.palette import make_palette
from unip_hub.utils.files import list_files

from .readers import read_label, read_thermal
from .transforms import normalize

__all__ = [
    "IMAGE_EXTENSIONS",
    "FolderSegDataset",
    "ImageFolderDataset",
    "InfMixDataset",
    "MFNetDataset",
    "SCUTSegDataset",
    "SODADataset",
    "SegDataset",
    "SplitSegDataset",
    "make_palette",
]

PathLike = str | os.PathLike
Pipeline = Callable[..., tuple[torch.Tensor, Any]]
INFMIX_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
"""The research code's InfMix file endings (any case); TIFF files are not part of the corpus."""


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


class SegDataset(Dataset):
    """Base of the segmentation datasets: a list of (image, label) files, class metadata and the pipeline.

    Args:
        samples: ``(image_path, label_path)`` pairs.
        pipeline: ``pipeline(gray, label, rng) -> (image, label)``; None normalises at the native size.
        seed: Makes the augmentation of each (epoch, index) reproducible; None draws fresh randomness.
    """

    CLASSES: tuple[str, ...] = ()
    PALETTE: tuple[tuple[int, int, int], ...] = ()
    ignore_index: int = 255

    def __init__(
        self, samples: Sequence[tuple[Path, Path]], pipeline: Pipeline | None = None, seed: int | None = None
    ) -> None:
        self.samples = list(samples)
        self.pipeline = pipeline
        self.seed = seed
        self.epoch = 0

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.CLASSES)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations a seeded dataset reproduces."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    input_scaling: Any = None  # an InputScaling (or its text); None: read_thermal (percentile 0.5/99.5)
    calibration: Any = None  # a radiometric Calibration for counts / units / FLIR parameters

    def set_input_scaling(self, scaling: Any, calibration: Any = None) -> SegDataset:
        """Read images with an input-scaling spec (``"window 20..120 degC"``...) so training sees what
        inference will (:class:`unip_hub.data.scaling.InputScaling`); returns ``self``."""
        from .scaling import InputScaling

        self.input_scaling = None if scaling is None else InputScaling.parse(scaling)
        self.calibration = calibration
        return self

    def read_image(self, path: Path) -> np.ndarray:
        """Read one image as uint8 ``(H, W)``, with :attr:`input_scaling` when set."""
        if self.input_scaling is None:
            return read_thermal(path)
        from .radiometric import read_radiometric

        return self.input_scaling.to_gray(read_radiometric(path, self.calibration))

    def transform(self, gray: np.ndarray, label: np.ndarray, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the pipeline to one sample with its (seeded or fresh) generator."""
        if self.pipeline is None:
            return normalize(gray), torch.from_numpy(label.astype(np.int64))  # (3, H, W), (H, W)
        rng = np.random.default_rng(None if self.seed is None else (self.seed, self.epoch, index))
        return self.pipeline(gray, label, rng)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.samples[index]
        gray = self.read_image(image_path)
        label = read_label(label_path)
        if gray.shape != label.shape:
            raise ValueError(f"{image_path} is {gray.shape} but its label {label_path} is {label.shape}")
        return self.transform(gray, label, index)


def _split_samples(
    root: Path, split_file: str, image_dir: Path, image_suffix: str, label_dir: Path, label_suffix: str
) -> list[tuple[Path, Path]]:
    split_path = _require(root / split_file, "split file")
    _require(image_dir, "image folder")
    _require(label_dir, "label folder")
    samples = []
    for line in split_path.read_text().splitlines():
        stem = line.strip()
        if not stem:
            continue
        stem = Path(stem).stem if Path(stem).suffix.lower() in INPUT_EXTENSIONS else stem
        image, label = image_dir / f"{stem}{image_suffix}", label_dir / f"{stem}{label_suffix}"
        samples.append((_require(image, f"image listed in {split_path}"), _require(label, f"label of {image}")))
    if not samples:
        raise ValueError(f"split file {split_path} lists no samples")
    return samples


def _split_name(splits: dict[str, str], split: str, dataset: str) -> str:
    if split in splits:
        return splits[split]
    if split in splits.values():
        return split
    raise ValueError(f"{dataset}: unknown split {split!r}; expected one of {sorted(splits)}")


class SplitSegDataset(SegDataset):
    """A benchmark laid out as ``<root>/<image folder>``, ``<root>/<label folder>`` and split files of stems.

    Subclasses set the class metadata, ``NAME``, ``SPLITS`` (split -> file), ``IMAGES`` and ``LABELS``
    (folder, suffix).

    Args:
        root: Dataset root.
        split: A key of ``SPLITS`` or a split file name.
        pipeline: See :class:`SegDataset`.
        seed: See :class:`SegDataset`.
    """

    NAME: ClassVar[str] = ""
    SPLITS: ClassVar[dict[str, str]] = {}
    IMAGES: ClassVar[tuple[str, str]] = ("images", ".jpg")
    LABELS: ClassVar[tuple[str, str]] = ("labels", ".png")

    def __init__(
        self, root: PathLike, split: str = "train", pipeline: Pipeline | None = None, seed: int | None = None
    ) -> None:
        root = _require(Path(root), f"{self.NAME} root")
        split_file = _split_name(self.SPLITS, split, self.NAME)
        (image_dir, image_suffix), (label_dir, label_suffix) = self.image_folder(root), self.LABELS
        samples = _split_samples(root, split_file, root / image_dir, image_suffix, root / label_dir, label_suffix)
        super().__init__(samples, pipeline, seed)

    def image_folder(self, root: Path) -> tuple[str, str]:
        """(folder, suffix) of the images under ``root``."""
        return self.IMAGES


class SODADataset(SplitSegDataset):
    """SODA: ``<root>/JPEGImages/*.jpg``, ``<root>/SegmentationClassPNG/*.png``; split ``train`` or ``test``
    (files ``train_infrared.txt`` / ``test_infrared.txt``) or a split file name."""

    CLASSES = (
        "_background_", "person", "building", "tree", "road", "pole", "grass", "door", "table", "chair", "car",
        "bicycle", "lamp", "monitor", "trafficCone", "trash can", "animal", "fence", "sky", "river", "sidewalk",
    )  # fmt: skip
    PALETTE = make_palette(21)
    NAME = "SODA"
    SPLITS: ClassVar[dict[str, str]] = {"train": "train_infrared.txt", "test": "test_infrared.txt"}
    IMAGES = ("JPEGImages", ".jpg")
    LABELS = ("SegmentationClassPNG", ".png")


class MFNetDataset(SplitSegDataset):
    """MFNet, thermal channel: ``<root>/thermal_imgs/*.png`` and ``<root>/labels/*.png``; ``train`` or ``test``
    (files ``train.txt`` / ``val_test.txt``) or a split file name.

    When ``thermal_imgs/`` is absent, the original release's 4-channel PNGs in ``<root>/images/`` are read and
    their channel 3 (R, G, B, thermal) is used; the two give the same pixels.
    """

    CLASSES = ("_background_", "car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump")
    PALETTE = make_palette(9)
    NAME = "MFNet"
    SPLITS: ClassVar[dict[str, str]] = {"train": "train.txt", "test": "val_test.txt", "val_test": "val_test.txt"}

    def image_folder(self, root: Path) -> tuple[str, str]:
        """``thermal_imgs`` when present, else the 4-channel ``images``."""
        self.four_channel = not (root / "thermal_imgs").is_dir()
        return ("images" if self.four_channel else "thermal_imgs"), ".png"

    def read_image(self, path: Path) -> np.ndarray:
        """Read a thermal PNG, or channel 3 of an original 4-channel PNG (with :attr:`input_scaling` when set)."""
        if not self.four_channel:
            return super().read_image(path)
        with Image.open(path) as image:
            if len(image.getbands()) != 4:
                raise ValueError(f"{path}: expected a 4-channel MFNet PNG (R, G, B, thermal), got mode {image.mode}")
            gray = np.asarray(image)[..., 3].copy()
        if self.input_scaling is None:
            return gray
        from .radiometric import Frame

        return self.input_scaling.to_gray(Frame(gray, None, str(path), "8-bit"))


class SCUTSegDataset(SplitSegDataset):
    """SCUT-Seg: ``<root>/images/*.jpg``, ``<root>/labels/*.png``; split ``train`` or ``val`` (files
    ``train.txt`` / ``val.txt``; ``test`` means ``val``) or a split file name."""

    CLASSES = ("background", "road", "person", "rider", "car", "truck", "fence", "tree", "bus", "pole")
    PALETTE = make_palette(10)
    NAME = "SCUT-Seg"
    SPLITS: ClassVar[dict[str, str]] = {"train": "train.txt", "val": "val.txt", "test": "val.txt"}


class FolderSegDataset(SegDataset):
    """Images and label maps in two folders, paired by file stem (``a.jpg`` with ``a.png``).

    Args:
        images_dir: Folder of images (any format :func:`read_thermal` reads, ``.npy`` included).
        labels_dir: Folder of label maps (PNG class indices or ``.npy``).
        classes: Class names, index order.
        palette: One RGB colour per class; :func:`make_palette` when None.
        pipeline: See :class:`SegDataset`.
        seed: See :class:`SegDataset`.
    """

    def __init__(
        self,
        images_dir: PathLike,
        labels_dir: PathLike,
        classes: Sequence[str],
        palette: Sequence[tuple[int, int, int]] | None = None,
        pipeline: Pipeline | None = None,
        seed: int | None = None,
    ) -> None:
        images_dir, labels_dir = _require(Path(images_dir), "image folder"), _require(Path(labels_dir), "label folder")
        images = list_files(images_dir, INPUT_EXTENSIONS, recursive=False)
        if not images:
            raise ValueError(f"no images ({', '.join(INPUT_EXTENSIONS)}) in {images_dir}")
        labels = {p.stem: p for p in list_files(labels_dir, INPUT_EXTENSIONS, recursive=False)}
        missing = [p.name for p in images if p.stem not in labels]
        if missing:
            raise FileNotFoundError(f"no label in {labels_dir} for {len(missing)} image(s), e.g. {missing[:3]}")
        self.CLASSES = tuple(classes)
        self.PALETTE = tuple(palette) if palette is not None else make_palette(len(self.CLASSES))
        super().__init__([(p, labels[p.stem]) for p in images], pipeline, seed)


def _gray_rgb(path: Path) -> Image.Image:
    """An image read as gray (ITU-R 601 luma, or robust 8 bits for 16-bit files) copied to three channels."""
    return Image.fromarray(read_thermal(path)).convert("RGB")


class ImageFolderDataset(Dataset):
    """Unlabelled images anywhere under ``root`` (jpg, jpeg, png, bmp, tif, tiff; any case), as gray RGB.

    Args:
        root: Folder searched recursively.
        transform: Applied to the PIL ``RGB`` image (gray in all channels); the item is its result, or the PIL
            image when None.
    """

    def __init__(self, root: PathLike, transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.root = _require(Path(root), "image folder")
        self.files = list_files(self.root, IMAGE_EXTENSIONS)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {self.root}")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Any:
        image = _gray_rgb(self.files[index])
        return image if self.transform is None else self.transform(image)


class InfMixDataset(ImageFolderDataset):
    """InfMix, the distillation corpus: infrared datasets, part of ImageNet-1k and COCO train2017, all gray.

    Args:
        root: ``<root>/<dataset>/thermal/*.{jpg,jpeg,JPEG,png,bmp}`` for each infrared dataset.
        imagenet_root: ImageNet train folder (one sub-folder per class), or None to leave ImageNet out.
        imagenet_per_class: Images taken from each class folder, the first in sorted name order.
        coco_root: COCO ``train2017`` image folder (or its parent), or None to leave COCO out.
        transform: As in :class:`ImageFolderDataset`.

    Attributes:
        counts: Number of images from each source (``infrared``, ``imagenet``, ``coco``).
    """

    def __init__(
        self,
        root: PathLike,
        imagenet_root: PathLike | None = None,
        imagenet_per_class: int = 200,
        coco_root: PathLike | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.root = _require(Path(root), "InfMix root")
        infrared = [
            p for d in sorted(self.root.iterdir()) if (d / "thermal").is_dir()
            for p in list_files(d / "thermal", INFMIX_EXTENSIONS, recursive=False)
        ]  # fmt: skip
        imagenet: list[Path] = []
        if imagenet_root is not None:
            class_dirs = sorted(d for d in _require(Path(imagenet_root), "ImageNet folder").iterdir() if d.is_dir())
            for class_dir in class_dirs:
                imagenet += list_files(class_dir, IMAGE_EXTENSIONS, recursive=False, limit=imagenet_per_class)
        coco: list[Path] = []
        if coco_root is not None:
            coco_dir = _require(Path(coco_root), "COCO folder")
            coco_dir = coco_dir / "train2017" if (coco_dir / "train2017").is_dir() else coco_dir
            coco = list_files(coco_dir, IMAGE_EXTENSIONS, recursive=False)
        self.counts = {"infrared": len(infrared), "imagenet": len(imagenet), "coco": len(coco)}
        self.files = infrared + imagenet + coco
        if not self.files:
            raise ValueError(f"no images found in {self.root}/<dataset>/thermal, ImageNet or COCO")
        self.transform = transform
