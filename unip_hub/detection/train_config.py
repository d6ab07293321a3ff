# exports: DetectionConfig, DetectionDataConfig, DETECTION_DATA, detection_dataset, synthetic_detection_dataset
"""The settings of a detection run (one field per ``unip finetune --task detection`` option) and its datasets.

Defaults are the reference detection recipe (reference section 7: ViTDet on FLIR ADAS): AdamW lr 1e-4, betas
(0.9, 0.999), weight decay 0.1 (none on norms, biases and ``pos_embed``), layer-wise lr decay 0.7, batch 2, 12
epochs with the lr x0.1 at 2/3 and 11/12 of the run, a linear warm-up of 250 iterations from 0.001 x lr,
large-scale jitter at 1024 (scale 0.1-2.0, flip), mixed precision on CUDA, seed 42. ``None`` fields are filled by
:meth:`DetectionConfig.resolved` (the iteration count needs the training set's length).

Datasets by ``data``: ``coco`` (``images`` + ``annotations``, ``val_images`` + ``val_annotations``), ``flir``
(``root``, ``version`` v1 | v2, splits train / val), ``llvip`` (``root``, splits train / test), ``yolo`` (``images``
+ ``labels`` + ``classes``, and the ``val_`` pair) and ``synthetic`` (generated thermal street scenes with their
people and cars as boxes, :func:`synthetic_detection_dataset`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from unip_hub.constants import PATCH_SIZE, VIT_SIZES
from unip_hub.data.scaling import InputScaling
from unip_hub.train.config import InputOptions, RunOptions, option

DETECTION_DATA = ("coco", "flir", "llvip", "yolo", "synthetic")
SYNTHETIC_DETECTION_CLASSES = ("person", "car")
RECIPE_EPOCHS = 12
RECIPE_WARMUP = 250


@dataclass
class DetectionDataConfig(InputOptions):
    """Which detection data to read and how (shared by ``unip finetune --task detection`` and ``unip eval``)."""

    data: str = option("synthetic", "detection data (--task detection): coco | flir | llvip | yolo | synthetic "
                     "(default synthetic)", choices=DETECTION_DATA)
    images: str | None = option(None, "coco / yolo: training images folder (unip eval: the evaluated images)")
    annotations: str | None = option(None, "coco: training annotation JSON (unip eval: the evaluated one)")
    labels: str | None = option(None, "yolo: folder of training label .txt files (matched by relative path)")
    val_images: str | None = option(None, "coco / yolo: validation images folder")
    val_annotations: str | None = option(None, "coco: validation annotation JSON")
    val_labels: str | None = option(None, "yolo: folder of validation label .txt files")
    root: str | None = option(None, "flir / llvip: dataset folder (FLIR_ADAS_1_3, FLIR_ADAS_v2, LLVIP or the one "
                            "holding it)")
    version: str | None = option(None, "flir: layout v1 | v2 (default: whichever the folder has)", choices=("v1", "v2"))
    classes: str | None = option(None, "folder / yolo datasets: comma-separated class names or a file with one per "
                               "line")
    synthetic_train: int = option(512, "synthetic dataset: training scenes (default 512)")
    synthetic_test: int = option(32, "synthetic dataset: test scenes (default 32)")
    synthetic_size: tuple[int, int] = option((128, 160), "synthetic scene size (default 128 160)", metavar=("H", "W"))
    seed: int = option(42, "random seed (default 42, the recipe's)")


@dataclass
class DetectionConfig(DetectionDataConfig, RunOptions):
    """Every setting of a detection run (``unip finetune --task detection`` options)."""

    arch: str = option("unip_vit_small", "backbone (default unip_vit_small)", choices=tuple(VIT_SIZES))
    weights: str | None = option(None, "pre-trained backbone: registry tag (mae_large, ibot_large) or a file; "
                               "default random init")
    head: str = option("faster_rcnn", "detection head: faster_rcnn (default) | retinanet | fcos | mask_rcnn",
                     choices=("faster_rcnn", "retinanet", "fcos", "mask_rcnn"))
    box_head: str = option("default", "faster_rcnn / mask_rcnn box head: default (2 fc) | 4conv1fc (ViTDet's)",
                         choices=("default", "4conv1fc"))
    size: int | None = option(None, "training crop side of the large-scale jitter and the detector's test resize "
                            "(default 1024; synthetic: the scene's long side)")
    scale_range: tuple[float, float] = option((0.1, 2.0), "large-scale jitter scale range (default 0.1 2.0)",
                                            metavar=("LOW", "HIGH"))
    drop_path: float = option(0.1, "stochastic depth rate (default 0.1)")
    iterations: int | None = option(None, "training iterations (default: 12 epochs; FLIR ADAS v1 at batch 2: 53,172)")
    warmup: int | None = option(None, "linear warm-up iterations from 0.001 x lr (default 250, at most a tenth of a "
                              "shorter run)")
    lr_steps: tuple[float, float] = option((2 / 3, 11 / 12), "fractions of the run at which the lr drops x0.1 "
                                         "(default 2/3 and 11/12: iterations 35,448 and 48,741 of 53,172)",
                                         metavar=("F1", "F2"))
    batch_size: int = option(2, "global batch size over all processes (default 2)")
    weight_decay: float = option(0.1, "AdamW weight decay (default 0.1)")
    layer_decay: float = option(0.7, "layer-wise lr decay (default 0.7)")
    eval_batch_size: int = option(2, "detection: images per evaluation batch (default 2)")
    out_dir: str = option("runs/detection", "run folder for checkpoints and logs (default runs/detection)")
    # Python API only: create_detector keywords (out_channels, rpn_convs, UnipViT overrides such as depth) and
    # torchvision detector keywords (rpn_batch_size_per_image, ...)
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})
    detector_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})

    def crop_size(self) -> int:
        """``size``, or its default: 1024, or the synthetic scenes' long side rounded up to a multiple of 32."""
        return self.size or (_round_up(max(self.synthetic_size), 2 * PATCH_SIZE) if self.data == "synthetic" else 1024)

    def resolved(self, train_size: int | None = None) -> DetectionConfig:
        """A copy with the size, iterations, warm-up and evaluation interval filled in and the settings checked.

        Args:
            train_size: Images in the training set (for the default length: 12 epochs); needed only when
                ``iterations`` is None.
        """
        c = DetectionConfig(**asdict(self))
        if c.data not in DETECTION_DATA:
            raise ValueError(f"data must be one of {DETECTION_DATA}, got {c.data!r}")
        c.size = c.crop_size()
        if c.iterations is None:
            if train_size is None:
                raise ValueError("the default iteration count (12 epochs) needs the training set's size")
            c.iterations = max(RECIPE_EPOCHS * train_size // c.batch_size, 1)
        c.warmup = c.warmup if c.warmup is not None else min(RECIPE_WARMUP, c.iterations // 10)
        c.eval_interval = c.eval_interval if c.eval_interval is not None else max(c.iterations // 10, 1)
        c.betas, c.synthetic_size = tuple(c.betas), tuple(c.synthetic_size)
        c.scale_range, c.lr_steps = tuple(c.scale_range), tuple(c.lr_steps)
        c.canonical_input()
        if c.iterations <= 0 or c.warmup < 0 or c.batch_size <= 0 or c.eval_batch_size <= 0:
            raise ValueError("iterations, batch_size and eval_batch_size must be positive, warmup >= 0")
        if c.size % PATCH_SIZE or c.size <= 0:
            raise ValueError(f"size must be a positive multiple of {PATCH_SIZE}, got {c.size}")
        if not 0 < c.scale_range[0] <= c.scale_range[1]:
            raise ValueError(f"scale_range must be 0 < LOW <= HIGH, got {c.scale_range}")
        return c


def _round_up(value: int, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _class_names(cfg: DetectionDataConfig, images: str) -> list[str]:
    from unip_hub.train.finetune_data import _read_classes

    return _read_classes(SimpleNamespace(classes=cfg.classes, data_root=str(Path(images).parent)))


def synthetic_detection_dataset(n: int, size: tuple[int, int] = (128, 160), seed: int = 0, transforms: Any = None,
                                scaling: Any = None, min_area: int = 6, masks: bool = False) -> Any:
    """``n`` synthetic thermal street scenes (:func:`unip_hub.data.synthetic.make_scene`) with their people and
    cars as boxes (one per connected blob, :func:`unip_hub.data.instances.instances_from_label`): labels 0 person,
    1 car; with ``masks``, each blob's pixels as its instance mask (Mask R-CNN). Scene ``i`` is the same for a
    given ``seed``."""
    import numpy as np

    from unip_hub.data.instances import instances_from_label
    from unip_hub.data.synthetic import CAR, PERSON, make_scene
    from unip_hub.detection.datasets import dataset_from_arrays

    grays, targets = [], []
    for i in range(n):
        gray, label = make_scene(*size, np.random.default_rng((seed, i)))
        inst = instances_from_label(label, [PERSON, CAR], min_area=min_area)
        grays.append(gray)
        targets.append({"boxes": inst["boxes"].numpy(), "labels": inst["labels"].numpy() - 1,
                        **({"masks": inst["masks"].numpy()} if masks else {})})
    return dataset_from_arrays(grays, targets, SYNTHETIC_DETECTION_CLASSES, transforms, scaling, seed=seed)


def _pair(cfg: DetectionDataConfig, split: str, fallback: bool) -> tuple[str | None, str | None, str | None]:
    """(images, annotations, labels) of the split; ``fallback``: the training flags serve as validation ones."""
    if split == "train":
        return cfg.images, cfg.annotations, cfg.labels
    val = (cfg.val_images, cfg.val_annotations, cfg.val_labels)
    return (cfg.images, cfg.annotations, cfg.labels) if fallback and not any(val) else val


def detection_dataset(cfg: DetectionDataConfig, split: str = "train", size: int = 1024,
                      scale_range: tuple[float, float] = (0.1, 2.0), fallback: bool = False,
                      masks: bool | None = None) -> Any:
    """The training set (large-scale jitter at ``size``, seeded by ``cfg.seed``) or the validation set (images as
    they are) of ``cfg``, read with its input scaling and counts calibration.

    Args:
        cfg: The data settings.
        split: ``"train"`` or ``"val"`` (LLVIP's test split; synthetic: held-out scenes).
        size: Crop side of the training augmentation.
        scale_range: Scale range of the training augmentation.
        fallback: For ``unip eval``: ``images`` / ``annotations`` / ``labels`` name the evaluated set when no
            ``val_`` flags are given.
        masks: Read instance masks (Mask R-CNN; COCO ``segmentation``, the synthetic scenes' blobs); default:
            when ``cfg.head`` is ``mask_rcnn``.

    Raises:
        ValueError: a flag the data layout needs is missing (one line naming it).
    """
    from unip_hub.data.frame import Calibration
    from unip_hub.detection import datasets as D
    from unip_hub.detection.transforms import eval_transforms, train_transforms

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    train = split == "train"
    transforms = train_transforms(size, tuple(scale_range)) if train else eval_transforms()
    scaling = InputScaling.parse(cfg.input_scaling)
    counts = tuple(cfg.counts_to_celsius) if cfg.counts_to_celsius else None
    kw = {"transforms": transforms, "scaling": scaling, "calibration": Calibration(counts_to_celsius=counts),
          "seed": cfg.seed if train else None}
    masks = getattr(cfg, "head", None) == "mask_rcnn" if masks is None else masks
    if masks and cfg.data not in ("coco", "synthetic"):
        raise ValueError(f"mask_rcnn needs instance masks, which --data {cfg.data} does not have: use --data coco "
                         "(annotations with 'segmentation') or a box head (--head faster_rcnn)")
    if cfg.data == "synthetic":
        if scaling.needs_temperatures:
            raise ValueError(f"input scaling '{scaling}' needs temperatures, but the synthetic scenes are 8-bit "
                             "gray; use --input-scaling 'percentile 0.5/99.5' or '8-bit'")
        n = cfg.synthetic_train if train else cfg.synthetic_test
        return synthetic_detection_dataset(n, tuple(cfg.synthetic_size), cfg.seed if train else cfg.seed + 10_000,
                                           transforms, scaling, masks=masks)
    if cfg.data in ("flir", "llvip"):
        if not cfg.root:
            raise ValueError(f"--root is required for --data {cfg.data} (the dataset folder)")
        if cfg.data == "flir":
            return D.flir_adas(cfg.root, "train" if train else "val", cfg.version, **kw)
        return D.llvip(cfg.root, "train" if train else "test", **kw)
    images, annotations, labels = _pair(cfg, split, fallback)
    prefix = "" if train or (fallback and not cfg.val_images) else "val-"
    need = ("images", "annotations") if cfg.data == "coco" else ("images", "labels")
    given = {"images": images, "annotations": annotations, "labels": labels}
    missing = [f"--{prefix}{name}" for name in need if not given[name]]
    if missing:
        raise ValueError(f"--data {cfg.data} needs {' and '.join(missing)} ({'training' if train else 'validation'} "
                         "set)")
    if cfg.data == "coco":
        return D.coco_dataset(images, annotations, **kw, masks=masks)
    return D.yolo_dataset(images, labels, _class_names(cfg, images), **kw)


def config_from_options(options: Any) -> DetectionConfig:
    """The run config of the given options (an ``argparse.Namespace`` or a dict): over the defaults, or with
    ``resume=FILE`` over that run's saved settings. Only options present override (parse with
    ``suppress_defaults=True``); a resumed run's ``out_dir`` defaults to the checkpoint's folder."""
    from unip_hub.train.checkpointing import load_training_state
    from unip_hub.train.config import dataclass_from_args

    given = dict(options if isinstance(options, dict) else vars(options))
    resume = given.get("resume")
    if not resume or resume == "auto":
        return dataclass_from_args(DetectionConfig, given)
    state = load_training_state(resume)
    if state.get("task") != "detection":
        raise ValueError(f"{resume} is not a detection run's checkpoint (resume segmentation runs without --task "
                         "detection)")
    given.setdefault("out_dir", str(Path(resume).parent))
    return dataclass_from_args(DetectionConfig, given, base=state["config"])
