"""The modules an export captures: single-output views of our models whose graphs keep batch, H and W symbolic.

- :class:`BackboneForExport`: ``UnipViT.forward_features`` (tokens) or its class token.
- :class:`SegmenterForExport`: pads to a multiple of the patch size unconditionally, calls ``Segmenter.forward``
  (which then pads by nothing), crops back. The pad that ``forward`` does only when it is needed would make the
  graph specialise on ``H % 16``; done here for every size, the same graph serves every H and W.
- :class:`AdaptiveAvgPool2dForExport`: the PPM's adaptive pools as averaging matrices built from the input size
  (the ONNX exporter otherwise bakes the example's bins into gather indices).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class BackboneForExport(nn.Module):
    """A UnipViT as a single-output module: normalised tokens (B, 1 + N, C) or the class token (B, C)."""

    def __init__(self, backbone: nn.Module, output: str = "tokens") -> None:
        super().__init__()
        if output not in ("tokens", "cls"):
            raise ValueError(f"output must be 'tokens' or 'cls', got {output!r}")
        self.backbone = backbone
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone.forward_features(x)  # (B, C_in, H, W) -> (B, 1 + N, C)
        return tokens if self.output == "tokens" else tokens[:, 0]


class SegmenterForExport(nn.Module):
    """``Segmenter.forward`` for any H and W in one graph: pad (possibly by 0) -> the segmenter -> crop."""

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.segmenter.patch_size
        h, w = x.shape[-2], x.shape[-1]
        xp = F.pad(x, (0, -w % p, 0, -h % p))  # (B, C_in, H, W) -> (B, C_in, H_pad, W_pad), zeros = mean gray
        logits = self.segmenter(xp)  # (B, K, H_pad, W_pad)
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        return logits.index_select(2, rows).index_select(3, cols)  # crop to (B, K, H, W) without a size guard


class AdaptiveAvgPool2dForExport(nn.Module):
    """``nn.AdaptiveAvgPool2d`` written as two averaging matrices built from the input size, so an ONNX graph pools
    correctly at every size."""

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    @staticmethod
    def _bins(n: int, s: int, like: torch.Tensor) -> torch.Tensor:
        # (s, n): row i averages inputs floor(i n / s) .. ceil((i + 1) n / s) - 1, as adaptive pooling does
        j = torch.arange(n, device=like.device)
        i = torch.arange(s, device=like.device)
        start, end = (i * n) // s, ((i + 1) * n + s - 1) // s
        mask = ((j[None] >= start[:, None]) & (j[None] < end[:, None])).to(like.dtype)
        return mask / mask.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self._bins(x.shape[-2], self.output_size[0], x)  # (s_h, H)
        cols = self._bins(x.shape[-1], self.output_size[1], x)  # (s_w, W)
        return rows @ x @ cols.transpose(0, 1)  # (B, C, H, W) -> (B, C, s_h, s_w)


def onnx_friendly(seg: nn.Module) -> nn.Module:
    """A copy of ``seg`` whose adaptive average pools are :class:`AdaptiveAvgPool2dForExport` (same results)."""
    seg = copy.deepcopy(seg)
    for name, mod in list(seg.named_modules()):
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            parent, _, leaf = name.rpartition(".")
            setattr(seg.get_submodule(parent) if parent else seg, leaf, AdaptiveAvgPool2dForExport(mod.output_size))
    return seg


def wrap_for_export(model: nn.Module, output: str = "tokens", onnx: bool = False) -> tuple[nn.Module, str]:
    """(the module to capture, ``"segmenter"`` or ``"backbone"``) for a Segmenter or a UnipViT in eval mode."""
    from unip_hub.models.segmenter import Segmenter
    from unip_hub.models.vit import UnipViT

    if isinstance(model, Segmenter):
        return SegmenterForExport(onnx_friendly(model) if onnx else model).eval(), "segmenter"
    if isinstance(model, UnipViT):
        return BackboneForExport(model, output).eval(), "backbone"
    raise TypeError(f"can export a UnipViT backbone or a Segmenter, not {type(model).__name__}")
