"""What a ViT state dict says about its own shape: the one spec inference every loader uses.

Width, depth, patch size, input channels and stored input size are read off the tensors; the head count is not
(the ``qkv`` shape is the same for any split), which is why distilled students record ``last_heads`` elsewhere
(:mod:`unip_hub.checkpoints.provenance`). Naming the architecture from the shape is
:func:`unip_hub.models.vit.arch_from_shape`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from unip_hub.checkpoints.read import CheckpointError

__all__ = ["infer_vit_spec"]

_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def infer_vit_spec(sd: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, Any]:
    """Shape of the ViT in ``sd`` (MAE/timm names, optionally under ``prefix``, e.g. ``"backbone."``).

    Returns:
        ``embed_dim``, ``depth``, ``patch_size``, ``in_chans``, ``img_size`` (position grid x patch),
        ``layer_scale`` and ``qkv_bias``.

    Raises:
        CheckpointError: the weights are not a ViT with class token, position embedding and blocks.
    """
    if prefix:
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    need = ("cls_token", "pos_embed", "patch_embed.proj.weight")
    missing = [k for k in need if k not in sd]
    blocks = sorted({int(m.group(1)) for k in sd if (m := _BLOCK.match(k))})
    if missing or not blocks:
        raise CheckpointError(f"not a ViT encoder in MAE/timm names: missing {missing or ['blocks.*']} (found keys "
                              f"such as {sorted(sd)[:6]}); check the file and its format")
    proj = sd["patch_embed.proj.weight"]  # (C, in_chans, p, p)
    pos = sd["pos_embed"]  # (1, 1 + h * w, C)
    n = pos.shape[1] - 1 if pos.ndim == 3 else -1
    side = math.isqrt(max(n, 0))
    if n <= 0 or side * side != n:
        raise CheckpointError(f"pos_embed of shape {tuple(pos.shape)} is not a class token plus a square grid")
    return {"embed_dim": int(proj.shape[0]), "depth": blocks[-1] + 1, "patch_size": int(proj.shape[-1]),
            "in_chans": int(proj.shape[1]), "img_size": side * int(proj.shape[-1]),
            "layer_scale": "blocks.0.ls1.gamma" in sd, "qkv_bias": "blocks.0.attn.qkv.bias" in sd}
