"""Keyword-only builders of UNIP backbones with weights (dinov2 ``hub/backbones.py`` style).

>>> model = unip_vit_small(weights="mae_large")          # registry tag or Weights.MAE_LARGE
>>> model = unip_vit_small(weights="/data/unip_vit_small_by_mae_large.pth", in_chans=1)
>>> model = unip_vit_small(weights="/data/my_distill/checkpoint-99.pth", last_heads="distilled")  # args.last_heads

The distilled last-block head count (``last_heads="distilled"``) is read, in this order, from the checkpoint's own
``args`` (research and ``unip distill`` files), the registry entry (official file name or tag), a converted
folder's ``config.json``, and a ``..._by_<teacher>_<size>...`` file name (:func:`distillation_of`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from unip_hub.checkpoints import (
    DistillationRecord,
    backbone_state_dict,
    checkpoint_filter_fn,
    load_state_dict_strict,
    read_checkpoint,
    record_from_args,
)
from unip_hub.constants import VIT_SIZES
from unip_hub.hub.registry import Weights, list_weights
from unip_hub.hub.resolve import ResolvedWeights, resolve_weights
from unip_hub.models.vit import ARCHS, UnipViT, build_vit

LastHeads = int | str | None
WeightsArg = Weights | str | os.PathLike | None
_TEACHER_IN_NAME = re.compile(r"_by_(mae|ibot|dino|deit)_(tiny|small|base|large)(?![a-z])", re.IGNORECASE)
_VIT_SIZE = re.compile(r"vit_(tiny|small|base|large)(?![a-z])", re.IGNORECASE)


def _teacher_heads(name: str) -> int | None:
    """Heads of a teacher named like ``vit_large`` / ``unip_vit_base`` / ``timm:vit_base_patch16_224.dino``."""
    m = _VIT_SIZE.search(name)
    spec = ARCHS.get(f"unip_vit_{m.group(1).lower()}") if m else None
    return spec.num_heads if spec else None


def resolve_last_heads(last_heads: LastHeads, distilled: int | None, source: str | None = None) -> int | None:
    """``None`` -> standard heads; ``"distilled"`` -> the head count stored with the weights; an int -> itself."""
    if last_heads is None or isinstance(last_heads, int):
        return last_heads
    if last_heads == "distilled":
        if distilled is None:
            where = f"{source} records" if source else "the weights record"
            raise ValueError(f"last_heads='distilled' needs the distilled head count, and {where} none (no "
                             "args.last_heads in the checkpoint, no registry entry, no converted config, no "
                             "'_by_<teacher>_<size>' file name); pass last_heads=<int> (16 for MAE-L/iBOT-L "
                             "teachers, 12 for DINO-B)")
        return distilled
    raise ValueError(f"last_heads must be None, 'distilled' or an int, got {last_heads!r}")


def _record_from_config(config: Mapping[str, Any] | None) -> DistillationRecord | None:
    """A converted folder's ``distilled_last_heads``, with the provenance saved beside it (which keeps its source)."""
    heads = (config or {}).get("distilled_last_heads") or (config or {}).get("last_heads")  # saved with its split
    if not isinstance(heads, int):
        return None
    cfg = config.get("pretrained_cfg") or {}
    if cfg.get("distillation"):  # our own record, as convert / create_backbone saved it
        known, source = cfg["distillation"], cfg["distillation"].get("source", "config.json")
    else:  # a registry entry's fields, or nothing
        known, source = cfg, "registry" if "teacher" in cfg else "config.json"
    student = known.get("student") or known.get("arch")
    return DistillationRecord(heads, known.get("teacher"), known.get("teacher_layer"), student, source)


def _record_from_name(name: str) -> DistillationRecord | None:
    m = _TEACHER_IN_NAME.search(name)
    if m is None:
        return None
    teacher = f"{m.group(1).lower()} vit_{m.group(2).lower()}"  # e.g. "dino vit_base"
    heads = _teacher_heads(teacher)
    return DistillationRecord(heads, teacher, None, None, "file name") if heads else None


def distillation_of(source: ResolvedWeights, obj: Mapping[str, Any] | None = None) -> DistillationRecord | None:
    """How the weights in ``source`` were distilled: the checkpoint's ``args`` (``obj``, what
    :func:`read_checkpoint` returned), then the registry entry, then the folder's ``config.json``, then the file
    name; ``None`` when nothing records it (the weights alone cannot tell a head count)."""
    record = record_from_args(obj, _teacher_heads) if obj is not None else None
    if record is None and source.entry is not None:
        e = source.entry
        record = DistillationRecord(e.last_heads, e.teacher, e.teacher_layer, e.arch, "registry")
    return record or _record_from_config(source.config) or _record_from_name(source.path.name)


def _load_state(model: UnipViT, obj: Mapping[str, Any], source: str) -> UnipViT:
    sd = checkpoint_filter_fn(backbone_state_dict(obj), model)
    allow = [r"blocks\.\d+\.ls[12]\.gamma"]  # layer scale added for fine-tuning starts at its init value
    if isinstance(model.head, nn.Linear):
        allow.append(r"head\.(weight|bias)")
    load_state_dict_strict(model, sd, source=source, allow_missing=allow)
    return model


def load_backbone_weights(model: UnipViT, source: ResolvedWeights) -> UnipViT:
    """Reads ``source`` safely and loads it strictly into ``model`` (layer scale / classifier may stay new)."""
    return _load_state(model, read_checkpoint(source.path), str(source.path))


def pretrained_cfg_of(source: ResolvedWeights, record: DistillationRecord | None) -> dict[str, Any]:
    """``model.pretrained_cfg``: the registry entry, or the file and its distillation record."""
    if source.entry is not None:
        return source.entry.to_dict()
    cfg: dict[str, Any] = {"file": str(source.path)}
    if record is not None:
        cfg["distillation"] = record.to_dict()
    return cfg


def create_backbone(
    arch: str, *, weights: WeightsArg = None, pretrained: bool = False, last_heads: LastHeads = None, **kwargs: Any
) -> UnipViT:
    """Builds ``arch`` and loads ``weights`` into it.

    Args:
        arch: ``unip_vit_tiny`` / ``_small`` / ``_base`` / ``_large``.
        weights: Registry tag, :class:`Weights`, local file/folder or ``hf-hub:`` repo; ``None`` = random init.
        pretrained: With ``weights=None``, load the default released weights (``mae_large``).
        last_heads: ``None`` (standard heads, what fine-tuning uses), ``"distilled"`` (the recorded count, see
            :func:`distillation_of`) or an int.
        **kwargs: :class:`UnipViT` options (``img_size``, ``in_chans``, ``drop_path_rate``, ``init_values``...).
    """
    if weights is None and pretrained:
        if not list_weights(arch):
            raise ValueError(f"{arch} has no released weights (UNIP-L was not released); pass weights=<path> to your "
                             f"own checkpoint or use pretrained=False. Released: {list_weights()}")
        weights = Weights.MAE_LARGE
    if weights is None:
        return build_vit(arch, last_heads=resolve_last_heads(last_heads, None), **kwargs)
    source = resolve_weights(arch, weights)
    obj = read_checkpoint(source.path)
    record = distillation_of(source, obj)
    distilled = record.last_heads if record is not None else None
    model = build_vit(arch, last_heads=resolve_last_heads(last_heads, distilled, str(source.path)),
                      distilled_last_heads=distilled, **kwargs)
    _load_state(model, obj, str(source.path))
    model.pretrained_cfg = pretrained_cfg_of(source, record)
    return model


def _size_builder(arch: str) -> Callable[..., UnipViT]:
    """The keyword-only builder named ``arch`` (one per :data:`~unip_hub.constants.VIT_SIZES` entry)."""
    size = VIT_SIZES[arch]

    def builder(*, weights: WeightsArg = None, pretrained: bool = False, **kwargs: Any) -> UnipViT:
        return create_backbone(arch, weights=weights, pretrained=pretrained, **kwargs)

    released = "" if list_weights(arch) else "; no weights were released for it"
    builder.__name__ = builder.__qualname__ = arch
    builder.__doc__ = (f"UNIP ViT-{size.letter}/16 ({size.embed_dim} wide, {size.depth} blocks, {size.num_heads} "
                       f"heads){released}.")
    return builder


BUILDERS: dict[str, Callable[..., UnipViT]] = {arch: _size_builder(arch) for arch in VIT_SIZES}
"""``unip_vit_tiny`` ... ``unip_vit_large``: ``create_backbone`` of one size (module attributes too)."""
globals().update(BUILDERS)
