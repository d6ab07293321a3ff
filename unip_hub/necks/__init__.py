"""Necks turning stride-16 ViT maps into a 4-level pyramid (strides 4, 8, 16, 32)."""

from unip_hub.necks.llfpn import LastLayerFPN, MultiLayerFPN

__all__ = ["LastLayerFPN", "MultiLayerFPN"]
