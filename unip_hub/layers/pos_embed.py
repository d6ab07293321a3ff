"""Absolute position embeddings: the fixed 2-D sine-cosine table of MAE and bicubic resizing of a token grid."""

from __future__ import annotations

import torch
from timm.layers import resample_abs_pos_embed


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    # (M,) positions -> (M, dim): half sines, half cosines over geometric frequencies
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    out = pos.reshape(-1, 1).double() * omega[None]
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_pos_embed_2d(embed_dim: int, grid: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """The MAE 2-D sine-cosine table: (1, [1 +] gh * gw, embed_dim), class-token row all zeros.

    As in MAE, the first half of the channels encodes the column (x) and the second half the row (y).
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim {embed_dim} must be divisible by 4 for a 2-D sin-cos embedding")
    gh, gw = grid
    ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    table = torch.cat([_sincos_1d(embed_dim // 2, xs), _sincos_1d(embed_dim // 2, ys)], dim=1)  # (gh*gw, C)
    if cls_token:
        table = torch.cat([table.new_zeros(1, embed_dim), table], dim=0)
    return table.float()[None]


def resize_pos_embed(
    pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Resizes a (1, prefix + gh*gw, C) table to ``new_grid``: bicubic, align_corners=False, no antialiasing,
    prefix (class) tokens untouched -- how the UNIP segmentation code adapts 14x14 to 32x32."""
    if tuple(new_grid) == tuple(old_grid):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed, list(new_grid), list(old_grid), num_prefix_tokens=num_prefix_tokens, antialias=False
    )
