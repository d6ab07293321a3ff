"""Inference helpers: whole/slide logits, palettes and overlays, writing mask files, compiling for inference."""

from unip_hub.inference.compile import compile_for_inference
from unip_hub.inference.outputs import list_inputs, segment_files, write_png_atomic
from unip_hub.inference.render import colorize, overlay, palette_array
from unip_hub.inference.slide import slide_logits, window_boxes

__all__ = ["colorize", "compile_for_inference", "list_inputs", "overlay", "palette_array", "segment_files",
           "slide_logits", "window_boxes", "write_png_atomic"]
