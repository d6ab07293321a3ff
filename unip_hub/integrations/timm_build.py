"""Building the timm registrations of :mod:`unip_hub.integrations.timm`: weights, ``features_only`` wrappers.

Imported on the first ``timm.create_model("unip_vit_*")`` call, never at registration time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from timm.models import FeatureInfo, build_model_with_cfg, resolve_pretrained_cfg
from torch import nn

from unip_hub.checkpoints import backbone_state_dict, load_state_dict_strict
from unip_hub.checkpoints import checkpoint_filter_fn as _adapt
from unip_hub.compat import timm_feature_getter_net
from unip_hub.hub.registry import WeightsEntry, get_weights_entry
from unip_hub.models.pyramid import ViTPyramid
from unip_hub.models.vit import ARCHS, UnipViT

__all__ = ["FEATURE_MODES", "UnipFeaturePyramid", "checkpoint_filter_fn", "create"]

FEATURE_MODES = ("llfpn", "multi", "blocks")


def checkpoint_filter_fn(state_dict: dict[str, Any], model: UnipViT) -> dict[str, torch.Tensor]:
    """timm-style filter: any supported layout (official ``{'model': ...}``, mmseg, plain) -> ``model``'s keys."""
    return _adapt(backbone_state_dict(state_dict), model)


def _load_state(model: UnipViT, obj: dict[str, Any], source: str) -> None:
    allow = [r"blocks\.\d+\.ls[12]\.gamma"]  # layer scale added for fine-tuning starts at its init value
    if isinstance(model.head, nn.Linear):
        allow.append(r"head\.(weight|bias)")
    load_state_dict_strict(model, checkpoint_filter_fn(obj, model), source=source, allow_missing=allow)


def _weights_source(arch: str, cfg: dict[str, Any], entry: WeightsEntry | None, cache_dir: Any):
    """Where the weights of a resolved timm pretrained cfg are: timm's order, state_dict > file > hf-hub."""
    from unip_hub.hub.resolve import ResolvedWeights, resolve_weights

    if cfg.get("file"):
        return resolve_weights(arch, cfg["file"])
    hub_id, filename = cfg.get("hf_hub_id"), cfg.get("hf_hub_filename")
    official = entry is not None and (hub_id, filename) == (entry.hub_id, entry.filename)
    if entry is not None and (official or not hub_id):
        return resolve_weights(arch, entry.tag)  # $UNIP_WEIGHTS_DIR > HF cache > download, pinned, sha256-checked
    if hub_id:
        from huggingface_hub import hf_hub_download

        repo, _, revision = hub_id.partition("@")
        path = hf_hub_download(repo, filename or "model.safetensors", revision=revision or None, cache_dir=cache_dir)
        return ResolvedWeights(path=Path(path))
    if cfg.get("url"):
        raise ValueError(f"{arch}: url weight sources are not supported; download the file and pass "
                         "pretrained_cfg_overlay=dict(file=...)")
    raise RuntimeError(f"{arch} has no released weights (UNIP-L was not released); use pretrained=False or pass "
                       "pretrained_cfg_overlay=dict(file='/path/to/your_checkpoint.pth')")


class UnipFeaturePyramid(ViTPyramid):
    """timm ``features_only`` wrapper: a :class:`ViTPyramid` with timm's ``feature_info`` and ``out_indices``.

    Args:
        backbone: The ViT built by timm.
        neck: LL-FPN or multi-layer FPN.
        layers: Blocks fed to the neck.
        out_indices: Pyramid levels returned (0 = stride 4 ... 3 = stride 32).
    """

    def __init__(self, backbone: UnipViT, neck: nn.Module, layers: Sequence[int], out_indices: Sequence[int]) -> None:
        super().__init__(backbone, neck, layers)
        info = [dict(num_chs=c, reduction=s, module=f"neck.fpn{i + 1}") for i, (c, s) in
                enumerate(zip(self.out_channels, self.strides))]
        bad = [i for i in out_indices if not -4 <= i < 4]
        if bad:
            raise ValueError(f"out_indices {bad} out of range: the UNIP pyramid has 4 levels (strides 4, 8, 16, 32)")
        self.out_indices = tuple(sorted(i % 4 for i in out_indices))
        self.feature_info = FeatureInfo(info, self.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, H, W) -> the selected levels, each (B, C, H/s, W/s)."""
        maps = self.pyramid(x)
        return [maps[i] for i in self.out_indices]


def _features(model: UnipViT, mode: str, out_indices: Any) -> nn.Module:
    from unip_hub.hub.segmenters import default_layers
    from unip_hub.necks import LastLayerFPN, MultiLayerFPN

    if mode not in FEATURE_MODES:
        raise ValueError(f"feature_mode must be one of {FEATURE_MODES}, got {mode!r}")
    c = model.embed_dim
    if mode == "blocks":  # the ViT's own feature_info (one entry per block) through timm's getter
        idx = out_indices if out_indices is not None else _default_blocks(model.depth)
        return timm_feature_getter_net()(model, out_indices=idx, output_fmt="NCHW")
    neck = "last" if mode == "llfpn" else "multi"
    layers = default_layers(model.depth, "upernet", neck)
    model.prune_intermediate_layers(layers, prune_norm=True, prune_head=True)  # the pyramid never uses them
    fpn = LastLayerFPN(c) if neck == "last" else MultiLayerFPN(c)
    return UnipFeaturePyramid(model, fpn, layers, (0, 1, 2, 3) if out_indices is None else out_indices)


def _default_blocks(depth: int) -> list[int] | int:
    """The segmenters' multi-layer blocks ([3, 5, 7, 11] / ViT-L [7, 11, 15, 23]); other depths: the last 4."""
    from unip_hub.hub.segmenters import default_layers

    try:
        return default_layers(depth, "linear", "multi")
    except ValueError:
        return min(4, depth)


def _vit_kwargs(arch: str, entry: WeightsEntry | None, source: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    from unip_hub.hub.backbones import resolve_last_heads

    distilled = entry.last_heads if entry else (source.distilled_last_heads if source else None)
    spec = ARCHS[arch]
    kwargs = {"embed_dim": spec.embed_dim, "depth": spec.depth, "num_heads": spec.num_heads, **kwargs}
    kwargs["last_heads"] = resolve_last_heads(kwargs.get("last_heads"), distilled)
    kwargs.setdefault("distilled_last_heads", distilled)
    return kwargs


def _feature_mode(kwargs: dict[str, Any]) -> str:
    """``feature_mode``, or timm's ``feature_cls="getter"`` (``forward_intermediates`` maps) as ``"blocks"``."""
    cls = kwargs.pop("feature_cls", None) or (kwargs.pop("feature_cfg", None) or {}).get("feature_cls")
    mode = kwargs.pop("feature_mode", None)
    if cls not in (None, "getter"):
        raise ValueError(f"feature_cls={cls!r} is not supported by UNIP models: use 'getter' (block outputs) or "
                         f"feature_mode={FEATURE_MODES}")
    return mode or ("blocks" if cls == "getter" else "llfpn")


def create(variant: str, arch: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Builds the timm model ``variant`` (of package architecture ``arch``); timm's ``create_model`` options."""
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.pop("pretrained_cfg", None),
                                 pretrained_cfg_overlay=kwargs.pop("pretrained_cfg_overlay", None)).to_dict()
    cache_dir = kwargs.pop("cache_dir", None)
    features_only = kwargs.pop("features_only", False)
    out_indices = kwargs.pop("out_indices", None)
    mode = _feature_mode(kwargs)
    entry = get_weights_entry(arch, cfg["tag"]) if cfg.get("tag") else None
    source = _weights_source(arch, cfg, entry, cache_dir) if pretrained and not cfg.get("state_dict") else None
    model = build_model_with_cfg(UnipViT, variant, pretrained=False, pretrained_cfg=cfg,
                                 pretrained_filter_fn=checkpoint_filter_fn, **_vit_kwargs(arch, entry, source, kwargs))
    if pretrained and cfg.get("state_dict"):
        _load_state(model, cfg["state_dict"], source="pretrained_cfg['state_dict']")
        model.pretrained_cfg = {k: v for k, v in cfg.items() if k != "state_dict"}
    elif source is not None:
        from unip_hub.checkpoints import read_checkpoint

        _load_state(model, read_checkpoint(source.path), source=os.fspath(source.path))
    if features_only:
        pretrained_cfg = model.pretrained_cfg
        model = _features(model, mode, out_indices)
        model.pretrained_cfg = model.default_cfg = {k: v for k, v in pretrained_cfg.items()
                                                   if k not in ("num_classes", "classifier")}
    return model
