"""Weights registry, resolution/download and the backbone builders."""

from unip_hub.hub.backbones import (
    create_backbone,
    unip_vit_base,
    unip_vit_large,
    unip_vit_small,
    unip_vit_tiny,
)
from unip_hub.hub.registry import Weights, WeightsEntry, get_weights_entry, list_models, list_weights
from unip_hub.hub.resolve import ENV_WEIGHTS_DIR, WeightsNotFoundError, resolve_weights

__all__ = [
    "ENV_WEIGHTS_DIR",
    "Weights",
    "WeightsEntry",
    "WeightsNotFoundError",
    "create_backbone",
    "get_weights_entry",
    "list_models",
    "list_weights",
    "resolve_weights",
    "unip_vit_base",
    "unip_vit_large",
    "unip_vit_small",
    "unip_vit_tiny",
]
