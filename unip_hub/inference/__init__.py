"""Inference around the tensor-only models: the predictor (files/arrays in, class maps out), whole/slide logits,
palettes and overlays, writing mask files, temperature statistics (``stats``), video (``video``), compiling for
inference."""

from unip_hub.inference.compile import compile_for_inference
from unip_hub.inference.outputs import (
    SegmentSettings,
    list_inputs,
    segment_files,
    segment_inputs,
    segment_paths,
    write_png_atomic,
)
from unip_hub.inference.predictor import Predictor, predict
from unip_hub.inference.render import colorize, overlay, palette_array
from unip_hub.inference.slide import InferenceOptions, slide_logits, window_boxes

__all__ = ["InferenceOptions", "Predictor", "SegmentSettings", "colorize", "compile_for_inference", "list_inputs",
           "overlay", "palette_array", "predict", "segment_files", "segment_inputs", "segment_paths", "slide_logits",
           "window_boxes", "write_png_atomic"]

# georeferenced rasters (unip_hub.geo, the geo extra): imported on first use
from unip_hub.utils.lazy import lazy_attributes

__all__ += ["GeoSettings", "RasterDetections", "RasterResult", "detect_raster", "is_georeferenced", "segment_raster"]
__getattr__, __dir__ = lazy_attributes(__name__, {"unip_hub.geo.segment": ("GeoSettings", "RasterResult",
                                                                           "segment_raster"),
                                                  "unip_hub.geo.detect": ("RasterDetections", "detect_raster"),
                                                  "unip_hub.geo.raster": ("is_georeferenced",)})
