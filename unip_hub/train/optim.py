"""Parameter groups for AdamW: no weight decay on biases, norms and tokens; layer-wise lr decay (BEiT / MAE).

Works on a :class:`~unip_hub.models.vit.UnipViT` or any module holding one as ``backbone`` (the ``Segmenter``).
Layer ids follow the BEiT segmentation code the UNIP scripts use: embeddings (``cls_token``, ``pos_embed``,
``patch_embed``) are layer 0, block ``i`` is layer ``i + 1``, everything else (final norm, neck, heads) is layer
``depth + 1``; a parameter of layer ``l`` gets ``lr_scale = layer_decay ** (depth + 1 - l)``.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

_EMBED = ("cls_token", "pos_embed", "patch_embed.", "mask_token", "dist_token", "reg_token")


def _backbone_prefix(model: nn.Module) -> tuple[str, int]:
    """(prefix of the ViT's parameter names inside ``model``, its depth)."""
    if hasattr(model, "blocks"):
        return "", len(model.blocks)
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "blocks"):
        return "backbone.", len(backbone.blocks)
    raise ValueError(f"{type(model).__name__} has neither ViT blocks nor a 'backbone' with blocks; layer-wise lr "
                     "decay needs a UnipViT or a Segmenter")


def layer_id(name: str, depth: int, prefix: str = "") -> int:
    """BEiT layer id of a parameter name: 0 = embeddings, ``i + 1`` = block ``i``, ``depth + 1`` = the rest."""
    if prefix and not name.startswith(prefix):
        return depth + 1
    name = name[len(prefix):]
    if name.startswith(_EMBED) or name in _EMBED:
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def _no_decay(name: str, param: nn.Parameter, skip: set[str], prefix: str) -> bool:
    short = name[len(prefix):] if prefix and name.startswith(prefix) else name
    return param.ndim <= 1 or name.endswith(".bias") or short in skip or name in skip


def _skip_list(model: nn.Module, extra: Iterable[str]) -> set[str]:
    skip = set(extra)
    for mod in (model, getattr(model, "backbone", None)):
        if mod is not None and hasattr(mod, "no_weight_decay"):
            skip |= set(mod.no_weight_decay())
    return skip


def param_groups_weight_decay(model: nn.Module, weight_decay: float,
                              no_weight_decay_list: Iterable[str] = ()) -> list[dict]:
    """Two groups: decayed weights, and biases / norms / 1-d params / ``no_weight_decay()`` names without decay.

    Frozen parameters (``requires_grad=False``) are left out.
    """
    prefix = "backbone." if hasattr(model, "backbone") and not hasattr(model, "blocks") else ""
    skip = _skip_list(model, no_weight_decay_list)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if _no_decay(name, p, skip, prefix) else decay).append(p)
    return [g for g in ({"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay})
            if g["params"]]


def param_groups_lrd(model: nn.Module, weight_decay: float = 0.05, layer_decay: float = 0.85,
                     no_weight_decay_list: Iterable[str] = ()) -> list[dict]:
    """Parameter groups with layer-wise lr decay: one group per (layer, decay / no decay) pair.

    Args:
        model: A ``UnipViT`` or a module with one as ``backbone``.
        weight_decay: Decay of the weight matrices.
        layer_decay: Per-layer lr factor (UNIP fine-tuning: 0.85); 1 disables the decay.
        no_weight_decay_list: Extra names (relative to the ViT, e.g. ``"pos_embed"``) without weight decay; the
            model's ``no_weight_decay()`` is always included.

    Returns:
        Groups for ``torch.optim.AdamW`` with keys ``params``, ``weight_decay``, ``lr_scale`` and ``layer_id``;
        set the rates with :func:`unip_hub.train.lr.set_lr`. Frozen parameters are left out.
    """
    prefix, depth = _backbone_prefix(model)
    skip = _skip_list(model, no_weight_decay_list)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lid = layer_id(name, depth, prefix)
        nd = _no_decay(name, p, skip, prefix)
        key = (lid, nd)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if nd else weight_decay,
                           "lr_scale": layer_decay ** (depth + 1 - lid), "layer_id": lid}
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]
