"""Inference helpers: whole/slide logits, palettes and overlays, writing mask files."""

from unip_hub.inference.slide import slide_logits, window_boxes

__all__ = ["slide_logits", "window_boxes"]
