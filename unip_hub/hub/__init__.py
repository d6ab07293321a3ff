"""Weights registry, resolution/download and the backbone builders.

The names are imported on first use (PEP 562), so that ``unip_hub.hub.registry`` -- plain metadata, read by the
timm registration from inside timm's own import -- loads without the model code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unip_hub.utils.lazy import lazy_attributes

_LAZY: dict[str, str] = {
    "ENV_WEIGHTS_DIR": "unip_hub.hub.resolve",
    "Weights": "unip_hub.hub.registry",
    "WeightsEntry": "unip_hub.hub.registry",
    "WeightsNotFoundError": "unip_hub.hub.resolve",
    "convert_to_hf_folder": "unip_hub.hub.convert",
    "create_backbone": "unip_hub.hub.backbones",
    "distillation_of": "unip_hub.hub.backbones",
    "get_weights_entry": "unip_hub.hub.registry",
    "list_entries": "unip_hub.hub.registry",
    "list_models": "unip_hub.hub.registry",
    "list_weights": "unip_hub.hub.registry",
    "resolve_weights": "unip_hub.hub.resolve",
    "unip_vit_base": "unip_hub.hub.backbones",
    "unip_vit_large": "unip_hub.hub.backbones",
    "unip_vit_small": "unip_hub.hub.backbones",
    "unip_vit_tiny": "unip_hub.hub.backbones",
}

__all__ = [
    "ENV_WEIGHTS_DIR",
    "Weights",
    "WeightsEntry",
    "WeightsNotFoundError",
    "convert_to_hf_folder",
    "create_backbone",
    "distillation_of",
    "get_weights_entry",
    "list_entries",
    "list_models",
    "list_weights",
    "resolve_weights",
    "unip_vit_base",
    "unip_vit_large",
    "unip_vit_small",
    "unip_vit_tiny",
]

if TYPE_CHECKING:
    from unip_hub.hub.backbones import (
        create_backbone,
        distillation_of,
        unip_vit_base,
        unip_vit_large,
        unip_vit_small,
        unip_vit_tiny,
    )
    from unip_hub.hub.convert import convert_to_hf_folder
    from unip_hub.hub.registry import Weights, WeightsEntry, get_weights_entry, list_entries, list_models, list_weights
    from unip_hub.hub.resolve import ENV_WEIGHTS_DIR, WeightsNotFoundError, resolve_weights


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
