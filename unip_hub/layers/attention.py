"""Multi-head self-attention with a fused path and an explicit-logits path.

The fused path (``forward``) uses ``F.scaled_dot_product_attention``, so no (N, N) matrix is materialised where
the backend has a memory-efficient kernel. The explicit paths exist only where the attention itself is the output:
``forward_with_logits`` (attention maps, NMI analysis) and ``logits`` (the distillation target, which needs only the
query/key projections).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Pre-softmax scaled dot-product attention with the MAE/timm parameter names ``qkv`` and ``proj``.

    Args:
        dim: Token width C.
        num_heads: Number of heads; ``dim`` must be divisible by it (UNIP's distilled last block uses 16 heads
            on any width, e.g. 16 x 24 for ViT-S).
        qkv_bias: Bias on the fused qkv projection.
        attn_drop: Dropout probability on the attention weights (training only).
        proj_drop: Dropout probability after the output projection.
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, t: torch.Tensor, parts: int) -> torch.Tensor:
        # (B, N, parts * C) -> (parts, B, H, N, D)
        b, n, _ = t.shape
        return t.reshape(b, n, parts, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        # (B, H, N, D) -> (B, N, C) -> projection
        b, _, n, _ = out.shape
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fused attention. ``x``: (B, N, C) -> (B, N, C)."""
        q, k, v = self._heads(self.qkv(x), 3).unbind(0)
        drop = self.attn_drop if self.training else 0.0
        return self._merge(F.scaled_dot_product_attention(q, k, v, dropout_p=drop))

    def forward_inference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fused attention before the output projection, with the qkv bias folded out: (B, N, C) -> (B, N, C), bias.

        Inference only (no dropout, no autograd needed). Of the qkv bias only the query part is added: the key bias
        shifts every logit of a query by the same amount, which the softmax removes, and the value bias passes
        through the attention unchanged (each row of weights sums to 1), so it is returned folded into the
        projection bias, ``proj.bias + proj.weight @ v_bias``. Equal to ``forward`` up to rounding; the caller
        applies ``proj`` as ``out @ proj.weight.T + bias``.
        """
        b, n, c = x.shape
        q, k, v = self._heads(F.linear(x, self.qkv.weight), 3).unbind(0)  # (B, H, N, D): no bias pass over qkv
        bias, proj_bias = self.qkv.bias, self.proj.bias
        if bias is not None:
            q = q + bias[:c].view(self.num_heads, 1, self.head_dim)  # the key bias cancels in the softmax
            v_bias = self.proj.weight @ bias[2 * c:]  # the value bias passes through the attention: (C,)
            proj_bias = v_bias if proj_bias is None else proj_bias + v_bias
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c), proj_bias

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax logits ``q @ k^T * head_dim**-0.5`` of (B, N, C) tokens -> (B, heads, N, N).

        Only the query and key slices of ``qkv`` are computed: the value path is not needed for the logits.
        """
        c = x.shape[-1]
        bias = None if self.qkv.bias is None else self.qkv.bias[: 2 * c]
        q, k = self._heads(F.linear(x, self.qkv.weight[: 2 * c], bias), 2).unbind(0)
        return (q * self.scale) @ k.transpose(-2, -1)

    def forward_with_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Explicit softmax attention returning the output (B, N, C) and the logits (B, heads, N, N)."""
        q, k, v = self._heads(self.qkv(x), 3).unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)  # (B, H, N, N)
        attn = logits.softmax(dim=-1)
        if self.training and self.attn_drop > 0:
            attn = F.dropout(attn, p=self.attn_drop)
        return self._merge(attn @ v), logits
