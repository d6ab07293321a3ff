"""Numbers of the UNIP recipe that several modules share (UNIP reference: pre-processing and evaluation).

One place for each: the backbone sizes, the normalisation statistics, the percentile scaling of high-bit-depth
frames, the sliding window of the evaluation, the patch size and the image file extensions the readers accept.
"""

from __future__ import annotations

from typing import NamedTuple


class VitSize(NamedTuple):
    """One backbone size: its shape and its letter (UNIP-<letter>, the torch.hub names ``unip_<letter>``)."""

    embed_dim: int
    depth: int
    num_heads: int
    letter: str


VIT_SIZES: dict[str, VitSize] = {
    "unip_vit_tiny": VitSize(192, 12, 3, "T"),
    "unip_vit_small": VitSize(384, 12, 6, "S"),
    "unip_vit_base": VitSize(768, 12, 12, "B"),
    "unip_vit_large": VitSize(1024, 24, 16, "L"),
}
"""The backbone sizes. One entry here gives the architecture (``models.vit.ARCHS``), its builder
(``unip_hub.unip_vit_*``), its torch.hub entry points (``unip_<letter>``, ``unip_<letter>_upernet``), its timm name
(``*_patch16_224``) and the CLI choices; released weights are entries of ``weights/registry.json``."""

PATCH_SIZE = 16
"""Side of a ViT patch; inputs are padded (segmenters) or must be (backbones) a multiple of it."""

PRETRAIN_MEAN = 0.3801
"""Mean of the distillation / backbone normalisation, on the 0-1 scale (InfMix gray), every channel."""
PRETRAIN_STD = 0.1871
"""Standard deviation of the distillation / backbone normalisation, on the 0-1 scale."""

SEG_MEAN = 96.9255
"""Mean of the fine-tuning normalisation, on the 0-255 gray scale (all three channels)."""
SEG_STD = 47.8976
"""Standard deviation of the fine-tuning normalisation, on the 0-255 gray scale."""

LOW_PERCENTILE = 0.5
"""Percentile of a high-bit-depth frame mapped to gray 0."""
HIGH_PERCENTILE = 99.5
"""Percentile of a high-bit-depth frame mapped to gray 255."""

SLIDE_CROP = 512
"""Window side of the sliding-window evaluation (mmseg ``mode='slide'``)."""
SLIDE_STRIDE = 341
"""Window step of the sliding-window evaluation (2/3 of the crop)."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Image files the readers open (compared lower-case)."""
INPUT_EXTENSIONS: tuple[str, ...] = (*IMAGE_EXTENSIONS, ".npy")
"""Every single-frame input :func:`unip_hub.data.read_thermal` accepts: images and ``.npy`` arrays."""

# segmenter heads and necks (hub.segmenters builds them; the CLIs offer them)
SEGMENTER_HEADS = ("upernet", "linear")
SEGMENTER_NECKS = ("last", "multi")
OUTPUT_KINDS: tuple[str, ...] = ("masks", "color", "overlay")
"""Per-image pictures of ``unip segment``: class indices, the palette rendering, the overlay on the input."""

INPUT_SCALING = f"percentile {LOW_PERCENTILE:g}/{HIGH_PERCENTILE:g}"
"""The default input-scaling spec (:class:`unip_hub.data.scaling.InputScaling`), stored in segmenter checkpoints."""

RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime")
"""Deployment runtimes (:func:`unip_hub.runtime.load_runtime`): torch eager, ONNX Runtime on the exported graph."""
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "bf16", "fp16")
"""Precisions: fp32 everywhere, int8 under ONNX Runtime, bf16 / fp16 (GPU) under torch autocast."""
