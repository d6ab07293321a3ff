"""Data for UNIP: infrared readers, the segmentation pipelines, datasets and synthetic thermal scenes.

``read_thermal`` turns any infrared frame (8/16-bit, 4-channel MFNet, colour-mapped RGB, numpy) into 8-bit gray;
``TrainPipeline`` / ``TestPipeline`` reproduce the fine-tuning recipe; the datasets read SODA, MFNet, SCUT-Seg,
any image/label folder pair, and the unlabelled InfMix corpus for distillation. Each submodule's ``__all__`` is
re-exported here.
"""

from . import datasets, readers, synthetic, transforms
from .datasets import *  # noqa: F403
from .readers import *  # noqa: F403
from .synthetic import *  # noqa: F403
from .transforms import *  # noqa: F403

__all__ = sorted({*datasets.__all__, *readers.__all__, *synthetic.__all__, *transforms.__all__})
