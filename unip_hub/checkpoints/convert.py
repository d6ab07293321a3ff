"""Key conversion: one function per foreign layout, like timm's ``checkpoint_filter_fn``.

Layouts met in practice:
- ``research``: the released UNIP students and MAE/DeiT files, ``{'model': state_dict, 'optimizer': ..., 'args': ...}``.
- ``mmseg``: a segmenter fine-tuned with the research code, ``{'state_dict': {'backbone.*', 'decode_head.*',
  'auxiliary_head.*'}, 'meta': ...}`` with layer scale named ``gamma_1``/``gamma_2`` and the LL-FPN inside the
  backbone (``backbone.fpn1.*`` ...).
- ``state_dict``: a flat state dict (DINO, timm, our safetensors), possibly with a DDP ``module.`` prefix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from timm.models import adapt_input_conv
from torch import nn

from unip_hub.checkpoints.read import CheckpointError
from unip_hub.layers import resize_pos_embed

_NECK = re.compile(r"^fpn[1-4]\.")
_MAE_DECODER = re.compile(r"^(decoder_|mask_token$)")


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return dict(sd)


def detect_format(obj: Mapping[str, Any]) -> str:
    """Names the layout of a checkpoint object: ``research``, ``mmseg`` or ``state_dict``."""
    if isinstance(obj.get("model"), Mapping) and _is_state_dict(obj["model"]):
        return "research"
    if isinstance(obj.get("state_dict"), Mapping) and _is_state_dict(obj["state_dict"]):
        return "mmseg" if any(k.startswith("backbone.") for k in obj["state_dict"]) else "state_dict"
    if _is_state_dict(obj):
        return "state_dict"
    raise CheckpointError(f"unknown checkpoint layout with top-level keys {sorted(obj)[:10]}; expected a state "
                          "dict, {'model': state_dict} (released UNIP/MAE files) or {'state_dict': ...} (mmseg)")


def rename_layer_scale(key: str) -> str:
    """mmseg/BEiT layer-scale names ``blocks.i.gamma_1`` -> timm's ``blocks.i.ls1.gamma``; other keys unchanged."""
    return re.sub(r"\.gamma_([12])$", r".ls\1.gamma", key)


def backbone_state_dict(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The ViT weights of any supported layout, in this package's names (MAE decoder and LL-FPN dropped)."""
    fmt = detect_format(obj)
    if fmt == "research":
        sd = obj["model"]
    elif fmt == "mmseg":
        sd = {k[len("backbone."):]: v for k, v in obj["state_dict"].items() if k.startswith("backbone.")}
        sd = {rename_layer_scale(k): v for k, v in sd.items() if not _NECK.match(k)}
    else:
        sd = obj["state_dict"] if "state_dict" in obj else obj
    sd = _strip_prefix(sd, "module.")
    if fmt == "state_dict" and "patch_embed.proj.weight" not in sd and "backbone.patch_embed.proj.weight" in sd:
        return backbone_state_dict({"state_dict": sd})  # a flat segmenter file (our .safetensors): its backbone.*
    return {k: v for k, v in sd.items() if not _MAE_DECODER.match(k)}


def convert_mmseg_segmenter(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """An mmseg segmenter checkpoint in this package's :class:`Segmenter` names.

    ``backbone.fpnK.*`` -> ``neck.fpnK.*``, ``backbone.blocks.i.gamma_j`` -> ``backbone.blocks.i.lsj.gamma``; the
    decode and auxiliary heads keep mmseg's names (our heads are built with them).
    """
    if detect_format(obj) != "mmseg":
        raise CheckpointError("not an mmseg segmenter checkpoint: expected {'state_dict': {'backbone.*', "
                              "'decode_head.*', ...}}")
    out = {}
    for k, v in _strip_prefix(obj["state_dict"], "module.").items():
        if k.startswith("backbone."):
            sub = k[len("backbone."):]
            k = "neck." + sub if _NECK.match(sub) else "backbone." + rename_layer_scale(sub)
        out[k] = v
    return out


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Adapts backbone weights to ``model`` (a :class:`UnipViT`): position-embedding grid and input channels.

    - ``pos_embed`` of another grid (14x14 pre-training -> 32x32 at 512 crops) is resized bicubically.
    - A 3-channel ``patch_embed.proj.weight`` loaded into a 1-channel model is summed over channels (timm's
      ``adapt_input_conv``), so a gray image gives the same features as its 3-channel copy.
    """
    out = dict(state_dict)
    pos = out.get("pos_embed")
    if pos is not None and pos.ndim == 3 and tuple(pos.shape) != tuple(model.pos_embed.shape):
        n = pos.shape[1] - model.num_prefix_tokens
        side = math.isqrt(n)
        if side * side != n:
            raise CheckpointError(f"pos_embed with {n} patch positions is not a square grid; cannot resize it")
        out["pos_embed"] = resize_pos_embed(pos, model.pos_grid, (side, side), model.num_prefix_tokens)
    w = out.get("patch_embed.proj.weight")
    if w is not None and w.ndim == 4 and w.shape[1] != model.in_chans:
        out["patch_embed.proj.weight"] = adapt_input_conv(model.in_chans, w)
    return out
