"""UNIP in timm: ``unip_vit_{tiny,small,base,large}_patch16_224`` with the released weights as pretrained tags.

Registered the moment timm is imported (before or after ``import unip_hub``, see :mod:`unip_hub.integrations`)::

    import timm, unip_hub
    m = timm.create_model("unip_vit_small_patch16_224.mae_large", pretrained=True)            # registry file
    m = timm.create_model("unip_vit_small_patch16_224.mae_large", pretrained=True,
                          pretrained_cfg_overlay=dict(file="unip_vit_small_by_mae_large.pth"))
    f = timm.create_model("unip_vit_small_patch16_224", features_only=True)   # LL-FPN maps, strides 4/8/16/32
    cfg = timm.data.resolve_data_config({}, model=m)                            # infrared mean/std 0.3801/0.1871

This module only registers names and pretrained cfgs (read from the weights registry, no model code imported),
so it is safe to import from inside timm's own import. Building is done by :mod:`unip_hub.integrations.timm_build`:
the models are this package's :class:`~unip_hub.models.vit.UnipViT` (built by timm's ``build_model_with_cfg``),
never timm's ``VisionTransformer``, and weights are read by :mod:`unip_hub.checkpoints` (safe ``weights_only``
reading of the official ``{'model', 'args': Namespace}`` files, strict load), not by timm's loader.

``features_only=True`` takes ``feature_mode``: ``"llfpn"`` (default: the last block through the LL-FPN, four maps
of width C at strides 4/8/16/32), ``"multi"`` (blocks [3, 5, 7, 11] through the multi-layer FPN), or ``"blocks"``
(raw stride-16 block outputs, ``out_indices`` = 0-based blocks, timm's ``FeatureGetterNet``). The pyramid necks are
new layers (no UNIP neck weights were released): train them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import generate_default_cfgs, register_model

from unip_hub.constants import PRETRAIN_MEAN, PRETRAIN_STD, VIT_SIZES

__all__ = ["TIMM_NAMES"]  # + the entry points (timm's register_model appends them)

_SUFFIX = "_patch16_224"
_PAPER = "UNIP: Rethinking Pre-trained Attention Patterns for Infrared Semantic Segmentation"


def _cfg(entry: Any = None) -> dict[str, Any]:
    """timm pretrained cfg of an architecture (``entry`` = a registry :class:`WeightsEntry` for a released tag)."""
    cfg: dict[str, Any] = dict(
        input_size=(3, 224, 224), interpolation="bicubic", crop_pct=1.0, mean=(PRETRAIN_MEAN,) * 3,
        std=(PRETRAIN_STD,) * 3, num_classes=0, first_conv="patch_embed.proj", classifier="head",
        license="apache-2.0", paper_name=_PAPER, paper_ids="arXiv:2502.02257", origin_url="https://github.com/casiatao/UNIP",
    )
    if entry is not None:
        cfg.update(hf_hub_id=entry.hub_id, hf_hub_filename=entry.filename, mean=tuple(entry.mean),
                   std=tuple(entry.std), input_size=(3, entry.input_size, entry.input_size),
                   notes=(f"distilled from {entry.teacher} layer {entry.teacher_layer} of {entry.teacher_depth}",
                          f"the last block was distilled with {entry.last_heads} heads and its value/MLP path "
                          "is untrained; fine-tune or read intermediate blocks"))
    return cfg


def _default_cfgs(archs: list[str]) -> dict[str, Any]:
    from unip_hub.hub.registry import get_weights_entry, list_weights

    cfgs: dict[str, Any] = {}
    for arch in archs:
        tags = [name.split(".", 1)[1] for name in list_weights(arch)]
        for tag in tags:
            cfgs[f"{arch}{_SUFFIX}.{tag}"] = _cfg(get_weights_entry(arch, tag))
        if not tags:
            cfgs[arch + _SUFFIX] = _cfg()
    return generate_default_cfgs(cfgs)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> Any:
    from unip_hub.integrations.timm_build import create

    return create(variant, TIMM_NAMES[variant], pretrained, **kwargs)


def _entry_point(arch: str) -> Callable[..., Any]:
    """timm's ``<arch>_patch16_224`` (one per :data:`~unip_hub.constants.VIT_SIZES` entry)."""
    size, variant = VIT_SIZES[arch], arch + _SUFFIX

    def entry(pretrained: bool = False, **kwargs: Any) -> Any:
        return _create(variant, pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = variant
    entry.__doc__ = f"UNIP ViT-{size.letter}/16 ({size.embed_dim} wide, {size.depth} blocks, {size.num_heads} heads)."
    return entry


_ENTRYPOINTS = tuple(_entry_point(arch) for arch in VIT_SIZES)
TIMM_NAMES: dict[str, str] = {fn.__name__: fn.__name__.removesuffix(_SUFFIX) for fn in _ENTRYPOINTS}
"""timm model name -> package architecture."""

default_cfgs = _default_cfgs(list(TIMM_NAMES.values()))
for _fn in _ENTRYPOINTS:
    globals()[_fn.__name__] = register_model(_fn)


def __getattr__(name: str) -> Any:
    # timm_build's public names, here too (imported only when used: model code and checkpoints)
    if name in ("UnipFeaturePyramid", "checkpoint_filter_fn", "FEATURE_MODES"):
        from unip_hub.integrations import timm_build

        return getattr(timm_build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
