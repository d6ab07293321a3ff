"""Pre-training data of NMI-HAD: the augmentation of the recipe and the InfMix / image-folder datasets.

Recipe (reference section 3): RandomResizedCrop to 224 with scale (0.2, 1.0) and bicubic interpolation, horizontal
flip, RGB -> L (ITU-R 601 luma, PIL's ``convert("L")``) -> 3 channels, normalisation with mean 0.3801 and std
0.1871 on every channel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from unip_hub.constants import PATCH_SIZE, PRETRAIN_MEAN, PRETRAIN_STD

DATA_LAYOUTS = ("folder", "infmix")


def pretrain_transform(input_size: int = 224, scale: tuple[float, float] = (0.2, 1.0), mean: float = PRETRAIN_MEAN,
                       std: float = PRETRAIN_STD) -> Callable[[Any], Any]:
    """PIL image -> normalised gray tensor (3, input_size, input_size) with the NMI-HAD augmentation."""
    try:
        from torchvision import transforms as T
    except ImportError as e:
        raise RuntimeError("the pre-training augmentation needs torchvision: pip install 'unip[train]'") from e

    if input_size % PATCH_SIZE:
        raise ValueError(f"input size {input_size} must be a multiple of the patch size 16")
    return T.Compose([
        T.RandomResizedCrop(input_size, scale=scale, interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        T.Grayscale(num_output_channels=3),  # ITU-R 601 luma copied to 3 channels
        T.ToTensor(),
        T.Normalize([mean] * 3, [std] * 3),
    ])


def build_pretrain_dataset(data_path: str | os.PathLike, layout: str = "folder", transform: Callable | None = None,
                           imagenet_root: str | os.PathLike | None = None, imagenet_per_class: int = 200,
                           coco_root: str | os.PathLike | None = None) -> Dataset:
    """The distillation corpus.

    Args:
        data_path: ``folder``: any folder of images (recursive); ``infmix``: the InfMix root
            (``<root>/<dataset>/thermal/*``).
        layout: ``"folder"`` or ``"infmix"``.
        transform: Applied to each gray PIL image; default :func:`pretrain_transform`.
        imagenet_root: InfMix only: ImageNet train folder; ``imagenet_per_class`` images per class are taken.
        imagenet_per_class: See above (200 in the paper).
        coco_root: InfMix only: COCO ``train2017`` folder.
    """
    from unip_hub.data.datasets import ImageFolderDataset, InfMixDataset

    transform = transform or pretrain_transform()
    if layout == "folder":
        if imagenet_root is not None or coco_root is not None:
            raise ValueError("imagenet_root / coco_root belong to the 'infmix' layout; use layout='infmix'")
        return ImageFolderDataset(data_path, transform=transform)
    if layout == "infmix":
        return InfMixDataset(data_path, imagenet_root=imagenet_root, imagenet_per_class=imagenet_per_class,
                             coco_root=coco_root, transform=transform)
    raise ValueError(f"unknown data layout {layout!r}; choose one of {DATA_LAYOUTS}")
