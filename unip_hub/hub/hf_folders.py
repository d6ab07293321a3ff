"""``unip convert``: any supported backbone file -> a Hugging Face folder (``model.safetensors``, ``config.json``,
``README.md``) that ``UnipViT.from_pretrained`` and ``unip_vit_*(weights=folder)`` load strictly.

The shape comes from the weights (:func:`~unip_hub.checkpoints.infer_vit_spec`, any patch size), the architecture
name from the shape (:func:`~unip_hub.models.vit.arch_from_shape`), the distilled head count and provenance from
the checkpoint's ``args``, the registry or the file name (:func:`~unip_hub.hub.backbones.distillation_of`). The
folder is written under a temporary name and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unip_hub.checkpoints import (
    DistillationRecord,
    backbone_state_dict,
    infer_vit_spec,
    load_state_dict_strict,
    read_checkpoint,
)
from unip_hub.hub.backbones import distillation_of, pretrained_cfg_of
from unip_hub.hub.registry import find_entry_by_filename
from unip_hub.hub.resolve import ResolvedWeights, read_folder_config
from unip_hub.models.vit import ARCHS, arch_from_shape, build_vit
from unip_hub.utils.atomic import atomic_dir

__all__ = ["convert_to_hf_folder", "describe_checkpoint"]


def _arch_for(spec: dict[str, Any], arch: str | None, src: Path) -> str:
    if arch is None:
        arch = arch_from_shape(spec["embed_dim"], spec["depth"])
        if arch is None:
            raise ValueError(f"{src}: no UNIP architecture has width {spec['embed_dim']} and depth {spec['depth']}; "
                             f"pass --arch (one of {sorted(ARCHS)})")
    elif arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    return arch


def _source_record(src: Path, obj: dict, last_heads: int | None) -> tuple[ResolvedWeights, DistillationRecord | None]:
    source = ResolvedWeights(src, find_entry_by_filename(src.name) if src.is_file() else None,
                             read_folder_config(src))
    record = distillation_of(source, obj)
    if last_heads is not None:  # the user's word wins, and is recorded as such
        record = DistillationRecord(last_heads, record.teacher if record else None,
                                    record.teacher_layer if record else None, None, "given")
    return source, record


def describe_checkpoint(src: str | os.PathLike) -> dict[str, Any]:
    """What a backbone file says about itself: shape, architecture name, layout and distillation (``unip info``)."""
    src = Path(src)
    obj = read_checkpoint(src)
    spec = infer_vit_spec(backbone_state_dict(obj))
    _, record = _source_record(src, obj, None)
    info = {"file": str(src), **spec, "arch": arch_from_shape(spec["embed_dim"], spec["depth"]),
            "distillation": record.to_dict() if record else None}
    if any(str(k).removeprefix("module.").startswith("decode_head.") for k in _state_keys(obj)):
        from unip_hub.checkpoints.segmenter_files import SegmenterCheckpoint
        from unip_hub.constants import INPUT_SCALING

        meta = SegmenterCheckpoint.read(src, obj).meta  # a segmenter (the file read once): its input scaling
        info["input_scaling"] = meta.get("input_scaling") or INPUT_SCALING
        info["counts_to_celsius"] = meta.get("counts_to_celsius")  # GAIN, OFFSET of 16-bit counts, or None
    return info


def _state_keys(obj: Any) -> list[Any]:
    for cand in (obj.get("state_dict"), obj.get("model"), obj):
        if isinstance(cand, dict):
            return list(cand)
    return []


def convert_to_hf_folder(src: str | os.PathLike, out_dir: str | os.PathLike, arch: str | None = None,
                         last_heads: int | None = None) -> Path:
    """Turns an official ``.pth`` (or any supported backbone file) into a Hugging Face folder.

    Args:
        src: Released UNIP file, a user's distillation checkpoint, an mmseg segmenter or a safetensors file.
        out_dir: New (or empty) folder to write.
        arch: Architecture; default inferred from the weights' width and depth.
        last_heads: Distilled last-block heads, overriding what the checkpoint / registry / file name records.

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty (checked before anything is read or written).
        CheckpointError: the file is unreadable, unsafe or holds no ViT backbone.
    """
    src, out_dir = Path(src), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new folder")
    obj = read_checkpoint(src)
    sd = backbone_state_dict(obj)
    spec = infer_vit_spec(sd)
    arch = _arch_for(spec, arch, src)
    source, record = _source_record(src, obj, last_heads)
    model = build_vit(arch, img_size=spec["img_size"], patch_size=spec["patch_size"], in_chans=spec["in_chans"],
                      init_values=1.0 if spec["layer_scale"] else None,  # fine-tuned backbones carry layer scale
                      distilled_last_heads=record.last_heads if record else None)
    load_state_dict_strict(model, sd, source=str(src))
    model.pretrained_cfg = pretrained_cfg_of(source, record)
    with atomic_dir(out_dir, overwrite=False) as tmp:
        model.save_pretrained(tmp)
    return out_dir
