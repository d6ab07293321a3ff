"""CPU inference fast path: linear layers through oneDNN with the bias (and the MLP's GELU) fused into the matmul.

PyTorch's own CPU linear copies the bias into the output before the BLAS call and runs GELU as a separate pass over
the (B, N, 4C) hidden tensor; oneDNN's ``_linear_pointwise`` (the kernel ``torch.compile`` uses for frozen CPU
models) does both inside the matmul. The blocks take this path only where nothing can observe the difference but
rounding (about 1e-6 relative): float32 tensors on the CPU, autograd off, no active dropout, no autocast, and not while
scripting, tracing, exporting or compiling (graphs keep the standard ops). ``torch.backends.mkldnn.flags(enabled=
False)`` turns it off.
"""

from __future__ import annotations

import torch
from torch import nn

_OP = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 spelling
        return torch.is_autocast_cpu_enabled()


def graph_capture() -> bool:
    """Whether a graph is being captured (scripting, tracing, exporting, compiling): keep the standard ops."""
    return (torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()
            or torch.compiler.is_exporting())


def use_onednn(x: torch.Tensor, dropout: float = 0.0) -> bool:
    """Whether linear layers may run on ``x`` through the fused oneDNN path; ``dropout``: the active dropout rate of
    the caller's layers (training mode), which this path does not apply."""
    return (_OP is not None and dropout == 0 and not torch.is_grad_enabled() and x.device.type == "cpu"
            and x.dtype == torch.float32 and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not _autocast_on() and not graph_capture())


def onednn_linear(x: torch.Tensor, layer: nn.Linear, gelu: bool = False) -> torch.Tensor:
    """``layer(x)`` (then exact GELU with ``gelu``) as one oneDNN call: (..., C_in) -> (..., C_out)."""
    lead = x.shape[:-1]
    out = _OP(x.reshape(-1, x.shape[-1]), layer.weight, layer.bias, "gelu" if gelu else "none", [],
              "none" if gelu else "")  # (M, C_in) -> (M, C_out); the GELU algorithm "none" = exact erf
    return out.reshape(*lead, out.shape[-1])
