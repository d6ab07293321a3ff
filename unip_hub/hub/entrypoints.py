"""The torch.hub entry points ``hubconf.py`` re-exports: per backbone size (:data:`~unip_hub.constants.VIT_SIZES`)
the long builder name (``unip_vit_small``, no weights by default), the short name pretrained by default
(``unip_s``) and the UPerNet segmenter (``unip_s_upernet``); then the detectors.

The short names and segmenters load the released MAE-L-distilled weights by default
(:func:`~unip_hub.hub.registry.default_weights`); a size without released weights needs ``weights=<your file>``
or ``pretrained=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unip_hub.constants import VIT_SIZES
from unip_hub.detection import models as detectors
from unip_hub.hub.backbones import BUILDERS, WeightsArg
from unip_hub.hub.registry import default_weights
from unip_hub.hub.segmenters import UPERNETS
from unip_hub.models.vit import UnipViT


def short_name(arch: str) -> str:
    """``unip_vit_small`` -> ``unip_s``."""
    return f"unip_{VIT_SIZES[arch].letter.lower()}"


def _pretrained_entry(arch: str) -> Callable[..., UnipViT]:
    """``unip_<letter>``: the backbone of ``arch`` with its released weights unless ``pretrained=False``."""
    letter, default = VIT_SIZES[arch].letter, default_weights(arch)

    def entry(*, pretrained: bool = True, weights: WeightsArg = default, **kwargs: Any) -> UnipViT:
        if pretrained and weights is None:
            raise ValueError(f"UNIP-{letter} has no released weights; use pretrained=False or pass "
                             "weights=<path to your file>")
        return BUILDERS[arch](weights=weights if pretrained else None, **kwargs)

    entry.__name__ = entry.__qualname__ = short_name(arch)
    entry.__doc__ = (f"UNIP-{letter} (ViT-{letter}/16), released weights by default." if default is not None else
                     f"UNIP-{letter} (ViT-{letter}/16): no weights were released, so ``pretrained=True`` needs "
                     "``weights=<your file>``.")
    return entry


ENTRY_POINTS: dict[str, Callable[..., Any]] = {
    **BUILDERS,
    **{short_name(arch): _pretrained_entry(arch) for arch in VIT_SIZES},
    **UPERNETS,
    **{name: getattr(detectors, name) for name in detectors.HUB_ENTRY_POINTS},  # torchvision loads on a build
}
"""Every entry point by name: backbones, segmenters, detectors."""
globals().update(ENTRY_POINTS)

__all__ = list(ENTRY_POINTS)
