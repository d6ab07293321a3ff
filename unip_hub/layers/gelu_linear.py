"""``fc2(GELU(h))`` for training that keeps only ``h`` for the backward pass and recomputes the GELU there.

Plain autograd keeps both the MLP's hidden pre-activation ``h`` (for GELU's gradient) and its activation ``GELU(h)``
(for fc2's weight gradient): two (B, N, 4C) tensors per block, the largest activations of a ViT. Recomputing the
activation in the backward pass (one elementwise pass) drops one of them: about a fifth of a ViT's training
activation memory, for about 1 % more time. Results and gradients are those of ``fc2(F.gelu(h))`` (the same
kernels: ``gelu``, ``gelu_backward``, matmuls). Used by :class:`~unip_hub.layers.Block` when autograd is on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


class _GeluLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(h, weight)
        ctx.has_bias = bias is not None
        ctx.device_type = h.device.type  # the backward pass runs under the forward's autocast state
        ctx.autocast = torch.is_autocast_enabled(ctx.device_type)
        ctx.autocast_dtype = torch.get_autocast_dtype(ctx.device_type)
        return F.linear(F.gelu(h), weight, bias)  # (..., 4C) -> (..., C)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, weight = ctx.saved_tensors
        grad_h = grad_w = grad_b = None
        with torch.autocast(ctx.device_type, dtype=ctx.autocast_dtype, enabled=ctx.autocast):
            g2 = grad_out.reshape(-1, grad_out.shape[-1])  # (M, C)
            if ctx.needs_input_grad[1]:
                grad_w = g2.t() @ F.gelu(h).reshape(-1, h.shape[-1])  # recomputed activation: (C, M) @ (M, 4C)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = g2.sum(0)
            if ctx.needs_input_grad[0]:
                grad_a = grad_out @ weight  # (..., C) @ (C, 4C) -> (..., 4C)
                grad_h = torch.ops.aten.gelu_backward(grad_a.to(h.dtype), h)
        return grad_h, grad_w, grad_b


def gelu_linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(F.gelu(h), weight, bias)`` that saves only ``h`` (and ``weight``) for the backward pass.

    Not twice differentiable (a second backward through it raises).
    """
    return _GeluLinear.apply(h, weight, bias)
