"""Non-overlapping patch embedding (a strided convolution named ``proj`` as in MAE/timm)."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Images (B, C_in, H, W) -> tokens (B, H/p * W/p, C) for any H, W that are multiples of ``patch_size``.

    Args:
        patch_size: Side of a square patch.
        in_chans: Input channels (3, or 1 for single-channel thermal input).
        embed_dim: Token width C.
    """

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def grid_size(self, x: torch.Tensor) -> tuple[int, int]:
        """Checks an input batch and returns its patch grid (H/p, W/p); raises ``ValueError`` when it does not fit.

        Under TorchScript and ``torch.fx`` symbolic tracing the grid is read off the shape without the checks
        (they need concrete sizes).
        """
        if torch.jit.is_scripting():
            return x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        else:  # TorchScript compiles only the branch above
            return self._checked_grid(x)

    def _checked_grid(self, x: torch.Tensor) -> tuple[int, int]:
        if isinstance(x, torch.fx.Proxy):  # symbolic tracing: no concrete sizes to check
            return x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        if x.ndim != 4:
            raise ValueError(f"expected a batch of images (B, {self.in_chans}, H, W), got a tensor of shape "
                             f"{tuple(x.shape)}; add a batch dimension with x[None]")
        _, c, h, w = x.shape
        if c != self.in_chans:
            raise ValueError(f"the model takes {self.in_chans}-channel input but got {c} channels; build it with "
                             f"in_chans={c} or convert the image (thermal gray -> repeat to 3 channels)")
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"input size {h}x{w} is not a multiple of the patch size {p}; pad or resize it "
                             f"(e.g. to {-(-h // p) * p}x{-(-w // p) * p}), or use a segmenter, which pads for you")
        return h // p, w // p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, N, C)."""
        self.grid_size(x)
        return self.proj(x).flatten(2).transpose(1, 2)
