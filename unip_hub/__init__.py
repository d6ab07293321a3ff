"""unip: the UNIP infrared-pretrained Vision Transformers (ICLR 2025) as an installable model zoo.

>>> import unip_hub
>>> model = unip_hub.unip_vit_small(weights="mae_large")
>>> feats = model.get_intermediate_layers(x, n=[3, 5, 7, 11], reshape=True, norm=False)

Importing the package is cheap: the names below are imported on first use (PEP 562), and UNIP registers itself
with timm, transformers and segmentation-models-pytorch the moment each of them is imported, in any order
(:mod:`unip_hub.integrations`). ``unip_hub.detection`` is :mod:`unip_hub.integrations.detection`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unip_hub.integrations import install_hooks as _install_hooks
from unip_hub.utils.lazy import lazy_attributes

__version__ = "0.1.0"

# module defining them -> public names (imported on first access)
_LAZY: dict[str, tuple[str, ...]] = {
    "unip_hub.models": ("UnipViT",),
    "unip_hub.hub.registry": ("Weights", "get_weights_entry", "list_models", "list_weights"),
    "unip_hub.hub.resolve": ("WeightsNotFoundError",),
    "unip_hub.hub.backbones": ("create_backbone", "unip_vit_base", "unip_vit_large", "unip_vit_small", "unip_vit_tiny"),
    "unip_hub.hub.segmenters": ("create_segmenter", "load_segmenter"),
}
_ALIASES: dict[str, str] = {"detection": "unip_hub.integrations.detection"}
"""Documented module aliases: ``unip_hub.detection`` is the torchvision adapter."""

__all__ = [
    "UnipViT",
    "Weights",
    "WeightsNotFoundError",
    "__version__",
    "create_backbone",
    "create_segmenter",
    "get_weights_entry",
    "list_models",
    "list_weights",
    "load_segmenter",
    "unip_vit_base",
    "unip_vit_large",
    "unip_vit_small",
    "unip_vit_tiny",
]

if TYPE_CHECKING:  # what static tools and IDEs see
    from unip_hub.hub.backbones import create_backbone, unip_vit_base, unip_vit_large, unip_vit_small, unip_vit_tiny
    from unip_hub.hub.registry import Weights, get_weights_entry, list_models, list_weights
    from unip_hub.hub.resolve import WeightsNotFoundError
    from unip_hub.hub.segmenters import create_segmenter, load_segmenter
    from unip_hub.integrations import detection as detection
    from unip_hub.models import UnipViT


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, _ALIASES)

_install_hooks()  # registrations with timm / transformers / SMP when (and only when) they are imported
