"""torch.hub entry points: ``torch.hub.load("casiatao/UNIP", "unip_s")`` (pretrained, MAE-L teacher, by default)."""

from unip_hub.hub.entrypoints import (  # noqa: F401
    unip_b,
    unip_l,
    unip_s,
    unip_t,
    unip_vit_base,
    unip_vit_large,
    unip_vit_small,
    unip_vit_tiny,
)
from unip_hub.hub.segmenters import unip_b_upernet, unip_l_upernet, unip_s_upernet, unip_t_upernet  # noqa: F401

dependencies = ["torch", "timm", "huggingface_hub", "safetensors"]
