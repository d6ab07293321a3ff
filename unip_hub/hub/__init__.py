"""Weights registry, resolution/download and the backbone builders.

The names are imported on first use (PEP 562), so that ``unip_hub.hub.registry`` -- plain metadata, read by the
timm registration from inside timm's own import -- loads without the model code.
"""

from __future__ import annotations

from unip_hub.constants import VIT_SIZES
from unip_hub.utils.lazy import exported_names, lazy_attributes

_LAZY: dict[str, tuple[str, ...]] = {
    "unip_hub.hub.resolve": ("ENV_WEIGHTS_DIR", "WeightsNotFoundError", "resolve_weights"),
    "unip_hub.hub.registry": (
        "Weights", "WeightsEntry", "get_weights_entry", "list_entries", "list_models", "list_weights",
    ),
    "unip_hub.hub.hf_folders": ("convert_to_hf_folder",),
    "unip_hub.hub.backbones": (
        "create_backbone", "distillation_of", *VIT_SIZES,
    ),
}

__all__ = exported_names(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
