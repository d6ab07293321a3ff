"""Segmenter checkpoints: reading ours and mmseg's (research code) safely, inferring their settings, saving ours.

Layouts read (all through :func:`read_checkpoint`, so no pickled code ever runs):

- mmseg (what the research code writes): ``{'state_dict': {backbone.* (with fpn1..fpn4, gamma_1/gamma_2),
  decode_head.*, auxiliary_head.*}, 'meta': {'CLASSES': ..., 'PALETTE': ...}, 'optimizer': ...}``.
- ours, ``.pth``: ``{'state_dict': Segmenter.state_dict(), 'meta': {arch, num_classes, head, neck, img_size,
  class_names, palette, ...}}`` (also accepted under ``'model'``, as training-state files hold it).
- ours, ``.safetensors``: the flat state dict, with the meta as JSON in the file's metadata under ``unip_segmenter``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unip_hub.checkpoints.convert import convert_mmseg_segmenter
from unip_hub.checkpoints.model_files import safetensors_meta, write_model_file
from unip_hub.checkpoints.read import SAFETENSORS_NAME, CheckpointError, read_checkpoint
from unip_hub.checkpoints.spec import infer_vit_spec

META_KEY = "unip_segmenter"


def _has_head(keys: Any) -> bool:
    return any(isinstance(k, str) and k.removeprefix("module.").startswith("decode_head.") for k in keys)


def _find_state_dict(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    for cand in (obj.get("state_dict"), obj.get("model"), obj):
        if isinstance(cand, Mapping) and _has_head(cand):
            return {k: v for k, v in cand.items() if isinstance(v, torch.Tensor)}
    raise CheckpointError(
        "not a segmenter checkpoint: no 'decode_head.*' weights found (top-level keys: "
        f"{sorted(map(str, obj))[:8]}). Backbone weights (released UNIP students, MAE files) go to weights=, "
        "not checkpoint=."
    )


def _safetensors_meta(path: Path) -> dict[str, Any]:
    return safetensors_meta(path / SAFETENSORS_NAME if path.is_dir() else path, META_KEY) or {}


def _normalise_meta(meta: Any) -> dict[str, Any]:
    """Our meta as is; mmseg's ``CLASSES``/``PALETTE`` as ``class_names``/``palette``; anything else dropped."""
    if not isinstance(meta, Mapping):
        return {}
    out = {k: v for k, v in meta.items() if k in ("arch", "num_classes", "head", "neck", "img_size", "layers",
                                                   "aux", "in_chans", "last_heads", "class_names", "palette",
                                                   "mean", "std", "backbone_kwargs", "input_scaling",
                                                   "counts_to_celsius")}
    if "CLASSES" in meta and meta["CLASSES"] is not None:
        out.setdefault("class_names", [str(c) for c in meta["CLASSES"]])
    if "PALETTE" in meta and meta["PALETTE"] is not None:
        out.setdefault("palette", [[int(v) for v in c] for c in meta["PALETTE"]])
    return out


@dataclass(frozen=True)
class SegmenterCheckpoint:
    """A segmenter checkpoint read once: what ``unip info``, :func:`unip_hub.load_segmenter` and
    ``create_segmenter(checkpoint=...)`` all take, so the file is opened and its settings inferred a single time.

    Attributes:
        path: The file or folder read.
        state_dict: Weights in :class:`~unip_hub.models.segmenter.Segmenter` names.
        meta: The file's meta (ours: arch, num_classes, head, neck, input_scaling, ...; mmseg: class names).
        layout: ``"mmseg"`` or ``"unip"``.
        found: What the weights themselves say (:func:`infer_segmenter_config`).
    """

    path: str
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    meta: dict[str, Any]
    layout: str
    found: dict[str, Any]

    @classmethod
    def read(cls, path: str | os.PathLike | SegmenterCheckpoint, obj: Mapping[str, Any] | None = None
             ) -> SegmenterCheckpoint:
        """Reads ``path`` safely (or takes ``obj``, what :func:`read_checkpoint` already returned for it); a
        :class:`SegmenterCheckpoint` is returned as it is.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            CheckpointError: unreadable, unsafe, or not a segmenter checkpoint.
        """
        if isinstance(path, SegmenterCheckpoint):
            return path
        path = Path(path)
        obj = read_checkpoint(path) if obj is None else obj
        sd = _find_state_dict(obj)
        raw_meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else None
        if path.is_dir() or path.suffix == ".safetensors":
            raw_meta = _safetensors_meta(path)  # the header's metadata (weights already in obj)
        layout = "mmseg" if any(k.startswith("backbone.fpn") or k.endswith(".gamma_1") for k in sd) else "unip"
        converted = convert_mmseg_segmenter({"state_dict": sd})  # no-op on our names, mmseg -> ours otherwise
        return cls(str(path), converted, _normalise_meta(raw_meta), layout, infer_segmenter_config(converted))


def read_segmenter_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """Reads a segmenter checkpoint (ours or mmseg's) safely: ``(state dict, meta, layout)`` of
    :meth:`SegmenterCheckpoint.read`."""
    ckpt = SegmenterCheckpoint.read(path)
    return ckpt.state_dict, ckpt.meta, ckpt.layout


def infer_segmenter_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What the weights themselves say: num_classes, head, aux, and the backbone's shape (:func:`infer_vit_spec`:
    embed_dim, depth, patch_size, in_chans, img_size, layer_scale, qkv_bias) when it is a complete ViT.

    The neck type (last-layer vs. multi-layer) cannot be read from the weights (same branches); it is not returned.
    The architecture name is :func:`unip_hub.models.vit.arch_from_shape` of ``embed_dim`` and ``depth``.
    """
    try:
        out: dict[str, Any] = infer_vit_spec(sd, prefix="backbone.")
    except CheckpointError:
        out = {}
    seg = sd.get("decode_head.conv_seg.weight")
    if seg is not None:
        out["num_classes"] = int(seg.shape[0])
    out["head"] = "upernet" if any(k.startswith("decode_head.psp_modules.") for k in sd) else "linear"
    out["aux"] = any(k.startswith("auxiliary_head.") for k in sd)
    return out


def save_segmenter_checkpoint(model: nn.Module, path: str | os.PathLike, meta: Mapping[str, Any] | None = None
                              ) -> Path:
    """Writes a segmenter's weights and meta atomically (:func:`unip_hub.utils.atomic.atomic_path`).

    ``.safetensors`` paths get a flat safetensors file (meta as JSON metadata); anything else a ``.pth``
    ``{'state_dict', 'meta'}`` readable with ``torch.load(weights_only=True)``. ``meta`` defaults to the
    model's ``config`` plus ``num_classes``, ``class_names``, ``palette``, ``mean`` and ``std``.
    """
    path = Path(path)
    if meta is None:
        meta = {**getattr(model, "config", {}), "num_classes": getattr(model, "num_classes", None),
                "class_names": getattr(model, "class_names", None), "palette": getattr(model, "palette", None),
                "mean": getattr(model, "mean", None), "std": getattr(model, "std", None),
                "input_scaling": getattr(model, "input_scaling", None),
                "counts_to_celsius": getattr(model, "counts_to_celsius", None)}
    return write_model_file(model, path, meta, META_KEY)
