"""Building blocks of the UNIP Vision Transformer, one block per file (dinov2 ``layers/`` style)."""

from unip_hub.layers.attention import Attention
from unip_hub.layers.block import Block
from unip_hub.layers.patch_embed import PatchEmbed
from unip_hub.layers.pos_embed import resize_pos_embed, sincos_pos_embed_2d

__all__ = ["Attention", "Block", "PatchEmbed", "resize_pos_embed", "sincos_pos_embed_2d"]
