"""Reading, converting and strictly loading checkpoints: the one place that touches weight files.

Flow: :func:`read_checkpoint` (safe) -> a ``convert_*`` function per format -> :func:`infer_vit_spec` (shape) and
:func:`record_from_args` (distillation) -> :func:`load_state_dict_strict`. The Hugging Face folder format
(``save_pretrained`` / ``from_pretrained`` and the model card) is :mod:`unip_hub.checkpoints.hf_mixin`. Nothing
here imports :mod:`unip_hub.models`.
"""

from unip_hub.checkpoints.convert import (
    backbone_state_dict,
    checkpoint_filter_fn,
    convert_mmseg_segmenter,
    detect_format,
    rename_layer_scale,
)
from unip_hub.checkpoints.provenance import DistillationRecord, record_from_args
from unip_hub.checkpoints.read import CheckpointError, read_checkpoint, sha256sum
from unip_hub.checkpoints.segmenter_files import SegmenterCheckpoint, save_segmenter_checkpoint
from unip_hub.checkpoints.spec import infer_vit_spec
from unip_hub.checkpoints.strict import LoadReport, load_state_dict_strict

__all__ = [
    "CheckpointError",
    "DistillationRecord",
    "LoadReport",
    "SegmenterCheckpoint",
    "backbone_state_dict",
    "checkpoint_filter_fn",
    "convert_mmseg_segmenter",
    "detect_format",
    "infer_vit_spec",
    "load_state_dict_strict",
    "read_checkpoint",
    "record_from_args",
    "rename_layer_scale",
    "save_segmenter_checkpoint",
    "sha256sum",
]
