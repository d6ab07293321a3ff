"""Whole-image and sliding-window inference (mmseg's ``whole_inference`` / ``slide_inference``).

The tensor code lives in :mod:`unip_hub.models.slide` (the model uses it and may not import this layer); this
module keeps the documented import path ``unip_hub.inference.slide``.
"""

from unip_hub.models.slide import InferenceOptions, LogitsFn, infer_logits, rescale_size, slide_logits, window_boxes

__all__ = ["InferenceOptions", "LogitsFn", "infer_logits", "rescale_size", "slide_logits", "window_boxes"]
