"""unip: the UNIP infrared-pretrained Vision Transformers (ICLR 2025) as an installable model zoo.

>>> import unip_hub
>>> model = unip_hub.unip_vit_small(weights="mae_large")
>>> feats = model.get_intermediate_layers(x, n=[3, 5, 7, 11], reshape=True, norm=False)

Importing the package is cheap: the names below are imported on first use (PEP 562), and UNIP registers itself
with timm, transformers and segmentation-models-pytorch the moment each of them is imported, in any order
(:mod:`unip_hub.integrations`). ``unip_hub.detection`` is the detection subpackage, imported on first use.
"""

from __future__ import annotations

from unip_hub.constants import VIT_SIZES
from unip_hub.integrations import install_hooks as _install_hooks
from unip_hub.utils.lazy import exported_names, lazy_attributes

__version__ = "0.1.0"

# module defining them -> public names (imported on first access)
_LAZY: dict[str, tuple[str, ...]] = {
    "unip_hub.models": ("UnipViT",),
    "unip_hub.hub.registry": ("Weights", "get_weights_entry", "list_models", "list_weights"),
    "unip_hub.hub.resolve": ("WeightsNotFoundError",),
    "unip_hub.hub.backbones": ("create_backbone", *VIT_SIZES),
    "unip_hub.hub.segmenters": ("create_segmenter", "load_segmenter"),
}
_ALIASES: dict[str, str] = {"detection": "unip_hub.detection"}
"""Subpackages reachable as attributes after a plain ``import unip_hub`` (imported on first access)."""

__all__ = exported_names(_LAZY, "__version__")


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, _ALIASES)

_install_hooks()  # registrations with timm / transformers / SMP when (and only when) they are imported
