"""Pre-norm transformer block (LayerNorm -> attention -> LayerNorm -> GELU MLP) with optional layer scale."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerScale, Mlp
from torch import nn

from unip_hub.layers.attention import Attention
from unip_hub.layers.gelu_linear import gelu_linear


def _graph_capture() -> bool:
    """Tracing, exporting or compiling: those graphs keep the standard ops (exporters and compilers fuse them).

    ``torch.fx`` symbolic tracing is not graph capture here: it records the path eager takes in the state it is
    traced in (train/eval, autograd on/off), so a graph and eager run the same way give bit-identical results.
    TorchScript never reaches this (its callers skip it under ``torch.jit.is_scripting()``).
    """
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()


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
        if not torch.jit.is_scripting():
            if self._recompute_gelu(x):
                # training: only fc1's output is kept for the backward pass, GELU is recomputed there (gelu_linear.py)
                return self.mlp.drop2(gelu_linear(self.mlp.fc1(x), self.mlp.fc2.weight, self.mlp.fc2.bias))
        return self.mlp(x)

    def _recompute_gelu(self, x: torch.Tensor) -> bool:
        # torch.fx cannot trace into an autograd.Function: its graphs run the same ops (gelu, linear) as modules
        dropout = self.training and self.mlp.drop1.p > 0
        return (self._plain_mlp() and torch.is_grad_enabled() and not dropout and not _graph_capture()
                and not isinstance(x, torch.fx.Proxy))

    def _mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path2(self.ls2(self._mlp(self.norm2(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C) with fused attention."""
        if not torch.jit.is_scripting():
            if self._inference_path(x):
                return self._forward_inference(x)
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return self._mlp_branch(x)

    def _plain_mlp(self) -> bool:
        mlp = self.mlp
        return isinstance(mlp.norm, nn.Identity) and isinstance(mlp.act, nn.GELU) and mlp.act.approximate == "none"

    def _inference_path(self, x: torch.Tensor) -> bool:
        """Eval, no autograd, no autocast, no graph capture, the standard sub-modules: :meth:`_forward_inference`.

        Under ``torch.fx`` symbolic tracing (``x`` is a Proxy, its dtype unknown) the same test is made on the
        tracing state, so a graph traced in eval under ``no_grad``/``inference_mode`` records this path, as eager
        runs it then.
        """
        if self.training or torch.is_grad_enabled() or _graph_capture() or not self._plain_mlp():
            return False
        if not all(isinstance(ls, (nn.Identity, LayerScale)) for ls in (self.ls1, self.ls2)):
            return False
        if isinstance(x, torch.fx.Proxy):  # parameters() gives the weights themselves, not the tracer's proxies
            return not torch.is_autocast_enabled(next(self.mlp.fc2.parameters()).device.type)
        return not torch.is_autocast_enabled(x.device.type) and x.dtype == self.mlp.fc2.weight.dtype

    @staticmethod
    def _residual(x: torch.Tensor, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  ls: nn.Module) -> torch.Tensor:
        # x + ls(h @ weight.T + bias): (B, N, C), (B, N, K) -> a new (B, N, C) tensor (callers may keep x)
        if isinstance(ls, LayerScale):
            return torch.addcmul(x, F.linear(h, weight, bias), ls.gamma)  # one pass for scale and residual
        out = (x + bias if bias is not None else x.clone()).contiguous()  # contiguous: addmm_ works on a view
        # residual add inside the matmul; its result is used (not `out`) so that torch.fx graphs keep the op
        return out.view(-1, out.shape[-1]).addmm_(h.reshape(-1, h.shape[-1]), weight.t()).view_as(out)

    def _forward_inference(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` in eval without autograd, with fewer passes over memory (same result up to rounding).

        The residual adds run inside the output matmuls (``addmm_`` on ``x + bias``; with layer scale, one
        ``addcmul``), the qkv bias is folded (:meth:`Attention.forward_inference`) and GELU runs in place;
        drop-path and dropout are identities in eval.
        """
        out, proj_bias = self.attn.forward_inference(self.norm1(x))  # (B, N, C) before the projection
        x = self._residual(x, out, self.attn.proj.weight, proj_bias, self.ls1)
        h = torch.ops.aten.gelu_(self.mlp.fc1(self.norm2(x)))  # (B, N, 4C), GELU in place
        return self._residual(x, h, self.mlp.fc2.weight, self.mlp.fc2.bias, self.ls2)

    def forward_with_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``forward`` but with explicit attention; also returns the logits (B, heads, N, N)."""
        out, logits = self.attn.forward_with_logits(self.norm1(x))
        x = x + self.drop_path1(self.ls1(out))
        return self._mlp_branch(x), logits

    def attention_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Only this block's pre-softmax attention logits (B, heads, N, N); the rest of the block is skipped."""
        return self.attn.logits(self.norm1(x))
