"""Weights registry, resolution/download and the backbone builders.

The names are imported on first use (PEP 562), so that ``unip_hub.hub.registry`` -- plain metadata, read by the
timm registration from inside timm's own import -- loads without the model code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unip_hub.utils.lazy import lazy_attributes

_LAZY: dict[str, tuple[str, ...]] = {
    "unip_hub.hub.resolve": ("ENV_WEIGHTS_DIR", "WeightsNotFoundError", "resolve_weights"),
    "unip_hub.hub.registry": (
        "Weights", "WeightsEntry", "get_weights_entry", "list_entries", "list_models", "list_weights",
    ),
    "unip_hub.hub.convert": ("convert_to_hf_folder",),
    "unip_hub.hub.backbones": (
        "create_backbone", "distillation_of", "unip_vit_base", "unip_vit_large", "unip_vit_small", "unip_vit_tiny",
    ),
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
