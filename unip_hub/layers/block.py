"""Pre-norm transformer block (LayerNorm -> attention -> LayerNorm -> GELU MLP) with optional layer scale."""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import DropPath, LayerScale, Mlp
from torch import nn

from unip_hub.layers.attention import Attention
from unip_hub.layers.gelu_linear import gelu_linear


def _graph_capture() -> bool:
    """Scripting, tracing, exporting or compiling: graphs keep the standard ops."""
    return (torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()
            or torch.compiler.is_exporting())


class Block(nn.Module):
    """One ViT block; parameter names match MAE/timm (``norm1``, ``attn``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``).

    Args:
        dim: Token width C.
        num_heads: Attention heads of this block.
        mlp_ratio: Hidden width of the MLP relative to ``dim``.
        qkv_bias: Bias on the qkv projection.
        drop_path: Stochastic-depth probability of both residual branches.
        init_values: Initial layer-scale value (``ls1.gamma`` / ``ls2.gamma``); ``None`` disables layer scale.
        proj_drop: Dropout after the attention projection and in the MLP.
        attn_drop: Dropout on the attention weights.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        init_values: float | None = None,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.norm1 = norm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.ls1 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop)
        self.ls2 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        # (B, N, C) -> (B, N, C)
        mlp = self.mlp
        plain = isinstance(mlp.norm, nn.Identity) and isinstance(mlp.act, nn.GELU) and mlp.act.approximate == "none"
        if plain and torch.is_grad_enabled() and not (self.training and mlp.drop1.p > 0) and not _graph_capture():
            # training: only fc1's output is kept for the backward pass, GELU is recomputed there (gelu_linear.py)
            return mlp.drop2(gelu_linear(mlp.fc1(x), mlp.fc2.weight, mlp.fc2.bias))
        return mlp(x)

    def _mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path2(self.ls2(self._mlp(self.norm2(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C) with fused attention."""
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return self._mlp_branch(x)

    def forward_with_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``forward`` but with explicit attention; also returns the logits (B, heads, N, N)."""
        out, logits = self.attn.forward_with_logits(self.norm1(x))
        x = x + self.drop_path1(self.ls1(out))
        return self._mlp_branch(x), logits

    def attention_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Only this block's pre-softmax attention logits (B, heads, N, N); the rest of the block is skipped."""
        return self.attn.logits(self.norm1(x))
