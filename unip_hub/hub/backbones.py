"""Keyword-only builders of UNIP backbones with weights (dinov2 ``hub/backbones.py`` style).

>>> model = unip_vit_small(weights="mae_large")          # registry tag or Weights.MAE_LARGE
>>> model = unip_vit_small(weights="/data/unip_vit_small_by_mae_large.pth", in_chans=1)
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from unip_hub.checkpoints import backbone_state_dict, checkpoint_filter_fn, load_state_dict_strict, read_checkpoint
from unip_hub.hub.registry import Weights, list_weights
from unip_hub.hub.resolve import ResolvedWeights, resolve_weights
from unip_hub.models.vit import UnipViT, build_vit

LastHeads = int | str | None
WeightsArg = Weights | str | os.PathLike | None


def resolve_last_heads(last_heads: LastHeads, distilled: int | None) -> int | None:
    """``None`` -> standard heads; ``"distilled"`` -> the head count stored with the weights; an int -> itself."""
    if last_heads is None or isinstance(last_heads, int):
        return last_heads
    if last_heads == "distilled":
        if distilled is None:
            raise ValueError("last_heads='distilled' needs weights whose distilled head count is known (a registry "
                             "tag, an official file name, or a converted folder); pass last_heads=16 explicitly")
        return distilled
    raise ValueError(f"last_heads must be None, 'distilled' or an int, got {last_heads!r}")


def load_backbone_weights(model: UnipViT, source: ResolvedWeights) -> UnipViT:
    """Reads ``source`` safely and loads it strictly into ``model`` (layer scale / classifier may stay new)."""
    sd = checkpoint_filter_fn(backbone_state_dict(read_checkpoint(source.path)), model)
    allow = [r"blocks\.\d+\.ls[12]\.gamma"]  # layer scale added for fine-tuning starts at its init value
    if isinstance(model.head, nn.Linear):
        allow.append(r"head\.(weight|bias)")
    load_state_dict_strict(model, sd, source=str(source.path), allow_missing=allow)
    return model


def create_backbone(
    arch: str, *, weights: WeightsArg = None, pretrained: bool = False, last_heads: LastHeads = None, **kwargs: Any
) -> UnipViT:
    """Builds ``arch`` and loads ``weights`` into it.

    Args:
        arch: ``unip_vit_tiny`` / ``_small`` / ``_base`` / ``_large``.
        weights: Registry tag, :class:`Weights`, local file/folder or ``hf-hub:`` repo; ``None`` = random init.
        pretrained: With ``weights=None``, load the default released weights (``mae_large``).
        last_heads: ``None`` (standard heads, what fine-tuning uses), ``"distilled"`` or an int.
        **kwargs: :class:`UnipViT` options (``img_size``, ``in_chans``, ``drop_path_rate``, ``init_values``...).
    """
    if weights is None and pretrained:
        if not list_weights(arch):
            raise ValueError(f"{arch} has no released weights (UNIP-L was not released); pass weights=<path> to your "
                             f"own checkpoint or use pretrained=False. Released: {list_weights()}")
        weights = Weights.MAE_LARGE
    source = resolve_weights(arch, weights) if weights is not None else None
    distilled = source.distilled_last_heads if source is not None else None
    model = build_vit(arch, last_heads=resolve_last_heads(last_heads, distilled), distilled_last_heads=distilled,
                      **kwargs)
    if source is not None:
        load_backbone_weights(model, source)
        model.pretrained_cfg = source.entry.to_dict() if source.entry else {"file": str(source.path)}
    return model


def unip_vit_tiny(*, weights: WeightsArg = None, pretrained: bool = False, **kwargs: Any) -> UnipViT:
    """UNIP ViT-T/16 (192 wide, 12 blocks, 3 heads)."""
    return create_backbone("unip_vit_tiny", weights=weights, pretrained=pretrained, **kwargs)


def unip_vit_small(*, weights: WeightsArg = None, pretrained: bool = False, **kwargs: Any) -> UnipViT:
    """UNIP ViT-S/16 (384 wide, 12 blocks, 6 heads)."""
    return create_backbone("unip_vit_small", weights=weights, pretrained=pretrained, **kwargs)


def unip_vit_base(*, weights: WeightsArg = None, pretrained: bool = False, **kwargs: Any) -> UnipViT:
    """UNIP ViT-B/16 (768 wide, 12 blocks, 12 heads)."""
    return create_backbone("unip_vit_base", weights=weights, pretrained=pretrained, **kwargs)


def unip_vit_large(*, weights: WeightsArg = None, pretrained: bool = False, **kwargs: Any) -> UnipViT:
    """UNIP ViT-L/16 (1024 wide, 24 blocks, 16 heads); no weights were released for it."""
    return create_backbone("unip_vit_large", weights=weights, pretrained=pretrained, **kwargs)
