"""Mean attention distance: how far, in patches, each query looks (Dosovitskiy et al.'s "attention distance").

For a patch query ``q`` the distance is ``sum_k A[q, k] * |pos_q - pos_k|`` over patch keys ``k``, with positions
on the patch grid and the Euclidean norm in units of one patch. It is averaged over patch queries and heads.

Prefix tokens (the class token) have no position: their query rows are left out, their key columns are dropped
and each patch query's remaining attention is **renormalised** to sum to 1 over the patch keys. The distance is
thus "where on the image a query looks, given it looks at the image"; the mass a query gives the class token is
not counted as distance 0 (which would mix two different things into one number).
"""

from __future__ import annotations

import math

import torch

from unip_hub.analysis.nmi import check_attention


def infer_grid(num_patches: int) -> tuple[int, int]:
    """A square (h, w) grid for ``num_patches``; ``ValueError`` when it is not a square number."""
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"{num_patches} patch tokens do not form a square grid; pass grid=(rows, cols)")
    return side, side


def patch_distances(grid: tuple[int, int], device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Euclidean distances (in patches) between all cells of a row-major ``grid``: (h*w, h*w)."""
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype),
                            indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=1)  # (h*w, 2)
    return torch.cdist(pos, pos)  # (h*w, h*w)


def mean_attention_distance(attn: torch.Tensor, grid: tuple[int, int] | None = None, num_prefix_tokens: int = 1,
                            reduce_heads: bool = True) -> torch.Tensor:
    """Mean attention distance in patches of post-softmax maps.

    Args:
        attn: (B, heads, N, N) attention probabilities, the first ``num_prefix_tokens`` tokens being class/register
            tokens and the rest the patches of ``grid`` in row-major order.
        grid: Patch grid (rows, cols); inferred as square when ``None``.
        num_prefix_tokens: Tokens without a position (1 for the class token, 0 for none).
        reduce_heads: Average over heads; ``False`` returns (B, heads).

    Returns:
        (B,) (or (B, heads)) distances in patches, float32 (float64 for float64 input).
    """
    check_attention(attn)
    n_patch = attn.shape[-1] - num_prefix_tokens
    if n_patch <= 0:
        raise ValueError(f"attention over {attn.shape[-1]} tokens has no patch tokens after {num_prefix_tokens} "
                         "prefix tokens")
    grid = infer_grid(n_patch) if grid is None else tuple(grid)
    if grid[0] * grid[1] != n_patch:
        raise ValueError(f"grid {grid} has {grid[0] * grid[1]} cells but the attention has {n_patch} patch tokens")
    a = attn[..., num_prefix_tokens:, num_prefix_tokens:].double()  # (B, H, P, P): patch queries -> patch keys
    a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)  # renormalise over patch keys
    dist = patch_distances(grid, device=a.device)  # (P, P)
    out = (a * dist).sum(dim=-1).mean(dim=-1)  # (B, H)
    if reduce_heads:
        out = out.mean(dim=-1)  # (B,)
    return out.to(torch.float64 if attn.dtype == torch.float64 else torch.float32)
