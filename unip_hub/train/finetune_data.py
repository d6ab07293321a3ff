"""The datasets of a fine-tuning run: the training set with the recipe's augmentation, the test set as it is.

``dataset`` is a name of :data:`unip_hub.data.presets.DATASETS`: the SODA / MFNet / SCUT-Seg layouts, any
``folder`` (``<root>/images/<split>``, ``<root>/labels/<split>``, ``classes.txt``) or the generated ``synthetic``
scenes. Images are read with the run's input-scaling spec (:class:`unip_hub.data.scaling.InputScaling`): the
default ``percentile 0.5/99.5`` (:func:`unip_hub.data.read_thermal`'s gray for 8- and 16-bit images) like any
other, through :meth:`unip_hub.data.datasets.SegDataset.set_input_scaling`, as ``unip segment`` reads frames (so a
FLIR R-JPEG gives its temperatures, not its visible JPEG, in training, evaluation and inference alike); 16-bit count
images become temperatures with the run's ``counts_to_celsius`` (``GAIN * count + OFFSET``) there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from unip_hub.data.scaling import DEFAULT_SCALING, InputScaling

if TYPE_CHECKING:
    from unip_hub.train.finetune_config import FinetuneConfig

__all__ = ["build_dataset"]


def _read_classes(cfg: FinetuneConfig) -> list[str]:
    if cfg.classes and not Path(cfg.classes).is_file():
        return [c.strip() for c in cfg.classes.split(",") if c.strip()]
    path = Path(cfg.classes) if cfg.classes else Path(cfg.data_root) / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no class list: {path} does not exist; write one class name per line there or "
                                "pass --classes 'background,road,...'")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def build_dataset(cfg: FinetuneConfig, part: str = "train") -> Any:
    """The training set (recipe augmentation) or the test set (native size, no augmentation) of a resolved config,
    its images read with ``cfg.input_scaling``."""
    dataset = _build(cfg, part)
    scaling = InputScaling.parse(cfg.input_scaling)
    if cfg.dataset == "synthetic" and scaling == DEFAULT_SCALING:  # generated 8-bit scenes: read as they are
        return dataset
    if cfg.dataset == "synthetic" and scaling.needs_temperatures:
        raise ValueError(f"input scaling '{scaling}' needs temperatures, but the synthetic scenes are 8-bit gray; "
                         "use a folder dataset of radiometric images (float TIFF/NPY in degC or K, R-JPEG)")
    from unip_hub.data.radiometric import Calibration

    counts = tuple(cfg.counts_to_celsius) if cfg.counts_to_celsius else None
    return dataset.set_input_scaling(scaling, Calibration(counts_to_celsius=counts))


def _build(cfg: FinetuneConfig, part: str) -> Any:
    from unip_hub.data import datasets as D
    from unip_hub.data.synthetic import SyntheticThermalDataset
    from unip_hub.data.transforms import SegTransformConfig, TrainPipeline

    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    train = part == "train"
    pipe = TrainPipeline(SegTransformConfig(crop_size=(cfg.crop_size, cfg.crop_size), scale=cfg.scale)) if train \
        else None
    seed = cfg.seed if train else None
    if cfg.dataset == "synthetic":
        n = cfg.synthetic_train if train else cfg.synthetic_test
        return SyntheticThermalDataset(n, cfg.synthetic_size, cfg.seed if train else cfg.seed + 10_000, pipe)
    split = cfg.train_split if train else cfg.test_split
    if cfg.dataset == "folder":
        root = Path(cfg.data_root)
        return D.FolderSegDataset(root / "images" / split, root / "labels" / split, _read_classes(cfg), pipeline=pipe,
                                  seed=seed)
    cls = {"soda": D.SODADataset, "mfnet": D.MFNetDataset, "scut": D.SCUTSegDataset}[cfg.dataset]
    return cls(cfg.data_root, split, pipeline=pipe, seed=seed)
