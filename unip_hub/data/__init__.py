"""Data for UNIP: infrared readers, the segmentation pipelines, datasets and synthetic thermal scenes.

``read_thermal`` turns any infrared frame (8/16-bit, 4-channel MFNet, colour-mapped RGB, numpy) into 8-bit gray;
``TrainPipeline`` / ``TestPipeline`` reproduce the fine-tuning recipe; the datasets read SODA, MFNet, SCUT-Seg,
any image/label folder pair, and the unlabelled InfMix corpus for distillation.
"""

from .datasets import (
    FolderSegDataset,
    ImageFolderDataset,
    InfMixDataset,
    MFNetDataset,
    SCUTSegDataset,
    SegDataset,
    SODADataset,
    make_palette,
)
from .readers import gray_to_tensor, read_label, read_thermal, to_uint8
from .synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_PALETTE,
    SyntheticThermalDataset,
    make_scene,
    write_synthetic_dataset,
)
from .transforms import (
    PRETRAIN_MEAN,
    PRETRAIN_STD,
    SEG_MEAN,
    SEG_STD,
    SegTransformConfig,
    TestPipeline,
    TrainPipeline,
)

__all__ = [
    "PRETRAIN_MEAN",
    "PRETRAIN_STD",
    "SEG_MEAN",
    "SEG_STD",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_PALETTE",
    "FolderSegDataset",
    "ImageFolderDataset",
    "InfMixDataset",
    "MFNetDataset",
    "SCUTSegDataset",
    "SODADataset",
    "SegDataset",
    "SegTransformConfig",
    "SyntheticThermalDataset",
    "TestPipeline",
    "TrainPipeline",
    "gray_to_tensor",
    "make_palette",
    "make_scene",
    "read_label",
    "read_thermal",
    "to_uint8",
    "write_synthetic_dataset",
]
