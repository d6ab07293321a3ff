"""Exporting backbones and segmenters to ONNX, TorchScript and ``torch.export`` with dynamic batch, H and W,
each export verified against the eager model before it is kept (:func:`export_model`).

- :mod:`~unip_hub.export.modules`: what is captured (``UnipViT.forward_features``; ``Segmenter.forward`` between
  an unconditional pad and a crop).
- :mod:`~unip_hub.export.exporters`: capture, check at several sizes, atomic write.
- :mod:`~unip_hub.export.sources`: the model from an architecture name, a folder or a checkpoint (``unip export``).
"""

from unip_hub.export.exporters import (
    DEFAULT_SIZES,
    FORMATS,
    SUFFIXES,
    ExportError,
    ExportResult,
    default_check_sizes,
    export_model,
)
from unip_hub.export.modules import AdaptiveAvgPool2dForExport, BackboneForExport, SegmenterForExport, onnx_friendly
from unip_hub.export.sources import load_model

__all__ = ["DEFAULT_SIZES", "FORMATS", "SUFFIXES", "AdaptiveAvgPool2dForExport", "BackboneForExport",
           "ExportError", "ExportResult", "SegmenterForExport", "default_check_sizes", "export_model", "load_model",
           "onnx_friendly"]
