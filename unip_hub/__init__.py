"""unip: the UNIP infrared-pretrained Vision Transformers (ICLR 2025) as an installable model zoo.

>>> import unip_hub
>>> model = unip_hub.unip_vit_small(weights="mae_large")
>>> feats = model.get_intermediate_layers(x, n=[3, 5, 7, 11], reshape=True, norm=False)
"""

from unip_hub.hub import (
    Weights,
    WeightsNotFoundError,
    create_backbone,
    get_weights_entry,
    list_models,
    list_weights,
    unip_vit_base,
    unip_vit_large,
    unip_vit_small,
    unip_vit_tiny,
)
from unip_hub.hub.segmenters import create_segmenter, load_segmenter
from unip_hub.integrations import register_all as _register_integrations
from unip_hub.models import UnipViT

_register_integrations()  # timm names; transformers / SMP only if already imported (see unip_hub.integrations)

__version__ = "0.1.0"

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
