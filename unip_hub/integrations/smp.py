"""UNIP as a segmentation-models-pytorch encoder: the LL-FPN levels are the encoder's stages.

The encoders are registered the moment SMP is imported, before or after ``import unip_hub`` (see
:mod:`unip_hub.integrations`); importing this module imports SMP and registers them at once::

    import segmentation_models_pytorch as smp
    import unip_hub
    import unip_hub.integrations.smp as unip_smp   # for register_encoder / load_encoder_weights
    net = smp.UPerNet(encoder_name="unip_vit_small", encoder_weights=None, classes=9)   # random backbone
    net = smp.FPN(encoder_name="unip_vit_small.mae_large", encoder_weights=None, classes=9)  # released weights
    unip_smp.register_encoder("my_unip", "unip_vit_small", weights="/data/unip_vit_small_by_ibot_large.pth")

Stages as SMP expects them (depth 5): the input (stride 1), an **empty** (B, 0, H/2, W/2) map at stride 2 (a ViT
has nothing that fine; the convention of SMP's Mix-Transformer encoders), then the LL-FPN levels at strides
4/8/16/32, all C channels wide. ``output_stride`` 16 or 8 (DeepLabV3/V3+) keeps the coarse levels at stride 16
(``fpn3``) or 8 (``fpn2``) instead of pooling. Every SMP 0.6 decoder taking a registered encoder works with the
empty stride-2 stage (Unet, UnetPlusPlus, MAnet and Linknet simply get no stride-2 skip); DPT refuses (SMP builds
it only on ``tu-`` timm encoders). ``encoder_weights`` must stay ``None``: SMP downloads only its own safetensors
repos, so released UNIP files are given through the encoder name (``unip_vit_small.mae_large``) or
:func:`register_encoder` and read by :mod:`unip_hub.checkpoints`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from segmentation_models_pytorch.encoders import encoders as _SMP_ENCODERS
from timm.models import adapt_input_conv
from torch import nn

from unip_hub.compat import smp_encoder_mixin
from unip_hub.integrations._pyramid import ViTPyramid, build_pyramid
from unip_hub.models.vit import ARCHS

__all__ = ["UnipEncoder", "load_encoder_weights", "register_encoder"]

_EncoderMixin = smp_encoder_mixin()  # SMP keeps it in a private module: one version-checked import
_LEVELS = {32: [0, 1, 2, 3], 16: [0, 1, 2, 2], 8: [0, 1, 1, 1]}  # pyramid level feeding each of strides 4..32


class UnipEncoder(_EncoderMixin, ViTPyramid):
    """SMP encoder over :class:`~unip_hub.integrations._pyramid.ViTPyramid` (``backbone.*`` + ``neck.*`` weights).

    Args:
        arch: ``unip_vit_tiny`` / ``_small`` / ``_base`` / ``_large``.
        depth: SMP encoder depth (number of stages after the input), 1-5.
        output_stride: 32, or 16 / 8 for dilated decoders.
        weights: Backbone weights (registry tag, :class:`~unip_hub.Weights`, file, folder) or ``None``.
        neck: ``"last"`` (LL-FPN) or ``"multi"``.
        **vit_kwargs: :class:`~unip_hub.models.vit.UnipViT` options over the fine-tuning recipe.
    """

    _is_torch_scriptable = False
    _is_torch_exportable = True
    _is_torch_compilable = True

    def __init__(self, arch: str, depth: int = 5, output_stride: int = 32, weights: Any = None, neck: str = "last",
                 **vit_kwargs: Any) -> None:
        if not 1 <= depth <= 5:
            raise ValueError(f"UNIP encoders have 5 stages (strides 2-32); encoder_depth={depth} is not in 1-5")
        p = build_pyramid(arch, weights=weights, neck=neck, **vit_kwargs)
        ViTPyramid.__init__(self, p.backbone, p.neck, p.layers)
        self.arch = arch
        self._depth = depth
        self._in_channels = p.backbone.in_chans
        self._out_channels = [self._in_channels, 0, *p.level_channels]
        self._output_stride = 32
        self._levels = _LEVELS[32]
        if output_stride != 32:
            self.make_dilated(output_stride)

    def make_dilated(self, output_stride: int) -> None:
        """Keeps the coarse stages at stride 16 (``fpn3``) or 8 (``fpn2``) instead of pooling them."""
        if output_stride not in (8, 16):
            raise ValueError(f"UNIP encoders support output_stride 32, 16 or 8, got {output_stride}")
        self._output_stride = output_stride
        self._levels = _LEVELS[output_stride]

    def get_stages(self) -> dict[int, list[nn.Module]]:
        return {16: [self.neck.fpn3], 32: [self.neck.fpn4]}

    def set_in_channels(self, in_channels: int, pretrained: bool = True) -> None:
        """Adapts the patch projection to ``in_channels`` (1 = gray thermal: the RGB kernels summed)."""
        if in_channels == self._in_channels:
            return
        proj = self.backbone.patch_embed.proj
        new = nn.Conv2d(in_channels, proj.out_channels, proj.kernel_size, proj.stride).to(proj.weight)
        with torch.no_grad():
            new.weight.copy_(adapt_input_conv(in_channels, proj.weight))
            new.bias.copy_(proj.bias)
        self.backbone.patch_embed.proj = new
        self.backbone.patch_embed.in_chans = self.backbone.in_chans = self._in_channels = in_channels
        self._out_channels[0] = in_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, H, W) -> [x, (B, 0, H/2, W/2), (B, C, H/4, W/4), ..., (B, C, H/32, W/32)][: depth + 1]."""
        levels = self.pyramid(x)
        b, _, h, w = x.shape
        empty = x.new_empty(b, 0, h // 2, w // 2)  # SMP's placeholder for a stage the encoder does not have
        return [x, empty, *(levels[i] for i in self._levels)][: self._depth + 1]


def load_encoder_weights(encoder: UnipEncoder, weights: Any) -> UnipEncoder:
    """Loads released / own backbone ``weights`` into an encoder (e.g. ``model.encoder``), strictly."""
    from unip_hub.hub.backbones import load_backbone_weights
    from unip_hub.hub.resolve import resolve_weights

    load_backbone_weights(encoder.backbone, resolve_weights(encoder.arch, weights))
    return encoder


def register_encoder(name: str, arch: str, *, weights: str | os.PathLike | Any = None, neck: str = "last",
                     **vit_kwargs: Any) -> str:
    """Makes ``name`` an SMP ``encoder_name`` building ``arch`` (with ``weights`` loaded at construction).

    ``vit_kwargs`` are :class:`~unip_hub.models.vit.UnipViT` options (``img_size``, ``drop_path_rate``, ``depth``...).
    Returns ``name``.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    if weights is not None and not isinstance(weights, str | os.PathLike):
        weights = getattr(weights, "value", weights)  # Weights enum -> tag (kept picklable for SMP's deepcopy)
    _SMP_ENCODERS[name] = {"encoder": UnipEncoder, "pretrained_settings": {},
                           "params": dict(arch=arch, weights=weights, neck=neck, **vit_kwargs)}
    return name


def _register_defaults() -> None:
    from unip_hub.hub.registry import list_weights

    for arch in ARCHS:
        register_encoder(arch, arch)
    for name in list_weights():
        arch, tag = name.split(".", 1)
        register_encoder(name, arch, weights=tag)


_register_defaults()
