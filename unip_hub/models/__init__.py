"""Model definitions (no I/O): the UNIP ViT, its multi-scale pyramid view and the segmenter."""

from unip_hub.models.pyramid import ViTPyramid
from unip_hub.models.segmenter import Segmenter
from unip_hub.models.vit import ARCHS, ArchSpec, UnipViT, arch_from_shape, build_vit

__all__ = ["ARCHS", "ArchSpec", "Segmenter", "UnipViT", "ViTPyramid", "arch_from_shape", "build_vit"]
