"""Reading, converting and strictly loading checkpoints: the one place that touches weight files.

Flow: :func:`read_checkpoint` (safe) -> a ``convert_*`` function per format -> :func:`load_state_dict_strict`.
"""

from unip_hub.checkpoints.convert import (
    backbone_state_dict,
    checkpoint_filter_fn,
    convert_mmseg_segmenter,
    detect_format,
)
from unip_hub.checkpoints.load import LoadReport, load_state_dict_strict
from unip_hub.checkpoints.read import CheckpointError, read_checkpoint, sha256sum

__all__ = [
    "CheckpointError",
    "LoadReport",
    "backbone_state_dict",
    "checkpoint_filter_fn",
    "convert_mmseg_segmenter",
    "detect_format",
    "load_state_dict_strict",
    "read_checkpoint",
    "sha256sum",
]
