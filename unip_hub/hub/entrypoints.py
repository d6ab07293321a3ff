"""The torch.hub entry points listed in ``hubconf.py``: short names pretrained by default, and the long names."""

from __future__ import annotations

from typing import Any

from unip_hub.hub.backbones import WeightsArg, unip_vit_base, unip_vit_large, unip_vit_small, unip_vit_tiny
from unip_hub.hub.registry import Weights
from unip_hub.models.vit import UnipViT

__all__ = ["unip_b", "unip_l", "unip_s", "unip_t", "unip_vit_base", "unip_vit_large", "unip_vit_small",
           "unip_vit_tiny"]


def unip_t(*, pretrained: bool = True, weights: WeightsArg = Weights.MAE_LARGE, **kwargs: Any) -> UnipViT:
    """UNIP-T (ViT-T/16), released weights by default."""
    return unip_vit_tiny(weights=weights if pretrained else None, **kwargs)


def unip_s(*, pretrained: bool = True, weights: WeightsArg = Weights.MAE_LARGE, **kwargs: Any) -> UnipViT:
    """UNIP-S (ViT-S/16), released weights by default."""
    return unip_vit_small(weights=weights if pretrained else None, **kwargs)


def unip_b(*, pretrained: bool = True, weights: WeightsArg = Weights.MAE_LARGE, **kwargs: Any) -> UnipViT:
    """UNIP-B (ViT-B/16), released weights by default."""
    return unip_vit_base(weights=weights if pretrained else None, **kwargs)


def unip_l(*, pretrained: bool = True, weights: WeightsArg = None, **kwargs: Any) -> UnipViT:
    """UNIP-L (ViT-L/16): no weights were released, so ``pretrained=True`` needs ``weights=<your file>``."""
    if pretrained and weights is None:
        raise ValueError("UNIP-L has no released weights; use pretrained=False or pass weights=<path to your file>")
    return unip_vit_large(weights=weights if pretrained else None, **kwargs)
