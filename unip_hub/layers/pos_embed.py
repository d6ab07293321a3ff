"""Absolute position embeddings: the fixed 2-D sine-cosine table of MAE and bicubic resizing of a token grid."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
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


# inside resample_with_matrices(): captured resizes are two matrix products instead of a bicubic interpolate
_MATRICES: ContextVar[bool] = ContextVar("unip_resample_with_matrices", default=False)
_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic coefficient


@contextmanager
def resample_with_matrices() -> Iterator[None]:
    """Within it, a captured (exported) position-table resize is written as ``rows @ table @ cols^T`` with the
    bicubic interpolation matrices of :func:`bicubic_matrix`, built from the grid sizes in the graph.

    The ONNX export uses it: ONNX Runtime's cubic ``Resize`` kernel took 25-110 ms per call for a 384-channel
    table (14x14 -> 32x32, 32x32 -> 32x40), every call of a dynamic-shape graph; two small matmuls take well
    under 1 ms. Same values as ``F.interpolate(..., mode="bicubic", align_corners=False)`` up to float rounding.
    """
    token = _MATRICES.set(True)
    try:
        yield
    finally:
        _MATRICES.reset(token)


def _cubic(x: torch.Tensor, far: bool) -> torch.Tensor:
    # Keys' cubic convolution kernel with a = -0.75: |x| <= 1 (near) and 1 < |x| < 2 (far)
    a = _CUBIC_A
    return (((a * x - 5 * a) * x + 8 * a) * x - 4 * a) if far else (((a + 2) * x - (a + 3)) * x * x + 1)


def bicubic_matrix(n_out: int, n_in: int, like: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in) matrix ``M`` with ``M @ v`` = bicubic resampling of ``v`` along its first axis, as PyTorch's
    ``upsample_bicubic2d`` does it (align_corners=False, no antialiasing, taps clamped at the borders).

    Output ``o`` reads ``src = (o + 0.5) * n_in / n_out - 0.5``: the four inputs ``floor(src) - 1 .. + 2`` (clamped
    to ``[0, n_in - 1]``) with the cubic weights of ``t = src - floor(src)``. Sizes may be symbolic (exports).
    """
    o = torch.arange(n_out, device=like.device, dtype=like.dtype)
    src = (o + 0.5) * (n_in / n_out) - 0.5  # (n_out,)
    first = torch.floor(src)
    t = src - first
    weights = (_cubic(t + 1, True), _cubic(t, False), _cubic(1 - t, False), _cubic(2 - t, True))
    j = torch.arange(n_in, device=like.device)
    first = first.to(torch.int64)
    out = like.new_zeros(n_out, n_in)
    for k, w in enumerate(weights):  # clamped taps add onto the border rows, as the kernel's bounded reads do
        tap = (first + (k - 1)).clamp(0, n_in - 1)
        out = out + w[:, None] * (tap[:, None] == j[None]).to(like.dtype)
    return out


def _split_grid(pos_embed: torch.Tensor, old_grid: tuple[int, int], num_prefix_tokens: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, prefix + gh*gw, C) -> (prefix tokens (1, prefix, C), grid (1, C, gh, gw))."""
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    return prefix, grid.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2)


def _join_grid(prefix: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(1, prefix, C), (1, C, H, W) -> (1, prefix + H*W, C)."""
    return torch.cat([prefix, grid.flatten(2).transpose(1, 2)], dim=1)


def _resample(pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int], num_prefix_tokens: int
              ) -> torch.Tensor:
    """Graph-friendly bicubic resampling (the same operations as timm's ``resample_abs_pos_embed``)."""
    prefix, grid = _split_grid(pos_embed, old_grid, num_prefix_tokens)
    grid = F.interpolate(grid, size=[new_grid[0], new_grid[1]], mode="bicubic", align_corners=False)
    return _join_grid(prefix, grid)


def _resample_with_matrices(pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int],
                            num_prefix_tokens: int) -> torch.Tensor:
    """:func:`_resample` as ``rows @ grid @ cols^T`` (:func:`bicubic_matrix`), for ONNX exports."""
    prefix, grid = _split_grid(pos_embed, old_grid, num_prefix_tokens)  # grid: (1, C, gh, gw)
    rows = bicubic_matrix(new_grid[0], old_grid[0], grid)  # (H, gh)
    cols = bicubic_matrix(new_grid[1], old_grid[1], grid)  # (W, gw)
    return _join_grid(prefix, rows @ grid @ cols.transpose(0, 1))  # grid (1, C, H, W)


def _is_fx_proxy(pos_embed: torch.Tensor, new_grid: tuple[int, int]) -> bool:
    """``torch.fx`` symbolic tracing: the table or the grid is a ``torch.fx.Proxy`` (no concrete sizes)."""
    return isinstance(pos_embed, torch.fx.Proxy) or any(isinstance(g, torch.fx.Proxy) for g in new_grid)


def resize_pos_embed(
    pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Resizes a (1, prefix + gh*gw, C) table to ``new_grid``: bicubic, align_corners=False, no antialiasing,
    prefix (class) tokens untouched -- how the UNIP segmentation code adapts 14x14 to 32x32.

    While tracing, exporting or ``torch.fx`` tracing, the table is always resampled (bicubic to the same grid is the
    identity), so the graph does not bake in the example's size; TorchScript resamples with the same operations.
    """
    if torch.jit.is_scripting():
        if new_grid[0] == old_grid[0] and new_grid[1] == old_grid[1]:
            return pos_embed
        return _resample(pos_embed, new_grid, old_grid, num_prefix_tokens)
    else:  # TorchScript compiles only the branch above
        return _resize_eager(pos_embed, new_grid, old_grid, num_prefix_tokens)


def _resize_eager(pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int],
                  num_prefix_tokens: int) -> torch.Tensor:
    if torch.jit.is_tracing() or torch.compiler.is_exporting() or _is_fx_proxy(pos_embed, new_grid):
        resample = _resample_with_matrices if _MATRICES.get() else _resample
        return resample(pos_embed, new_grid, old_grid, num_prefix_tokens)
    if tuple(new_grid) == tuple(old_grid):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed, list(new_grid), list(old_grid), num_prefix_tokens=num_prefix_tokens, antialias=False
    )
