"""``torch.compile`` set up for inference: weights frozen into the graph, optionally autotuned matmuls.

Eager inference already takes the package's fast paths (fused attention, residual adds inside the output matmuls,
folded qkv bias; see :meth:`unip_hub.layers.Block._forward_inference`). Compiling goes further: Inductor fuses the
remaining element-wise work (LayerNorm, GELU, biases, residual adds) into the neighbouring kernels, and with
*freezing* it treats the weights as constants (constant folding, pre-packed matmul weights). With
``max_autotune`` it also times its own C++ matmul kernels against ATen's and keeps the faster, fusing the
epilogues into them. Measured on a 2-core CPU (docs/performance.md), ViT-T forward against eager in a two-variant
A/B: 1.12x with freezing, 1.18x with ``max_autotune``, after 15-60 s of compilation per input shape (the
three-variant benchmark suite did not show the gain).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def compile_for_inference(model: nn.Module | Callable[..., Any], *, max_autotune: bool = False,
                          dynamic: bool | None = None, cuda_graphs: bool = False) -> Callable[..., Any]:
    """``torch.compile`` of ``model`` (a module or any callable, e.g. ``model.forward_features``) for inference.

    Call the result under ``torch.inference_mode()`` (or ``torch.no_grad()``) on a model in ``eval()``: freezing
    bakes the current weights into the compiled graph, so weights changed later are not seen (compile again), and
    calls with autograd enabled run without freezing. Each new input shape compiles again unless ``dynamic``.

    Args:
        model: The module or callable to compile.
        max_autotune: Also autotune the matmul kernels (longer compilation, faster on CPU and GPU).
        dynamic: Passed to ``torch.compile`` (``None``: specialise first, generalise on a second shape).
        cuda_graphs: On a GPU, replay each compiled shape as a CUDA graph (Inductor's ``triton.cudagraphs``, what
            ``mode="reduce-overhead"`` turns on): one launch per call instead of one per kernel, for fixed shapes.

    Returns:
        The compiled callable.

    Raises:
        ValueError: If ``model`` is an ``nn.Module`` in training mode.
    """
    if isinstance(model, nn.Module) and model.training:
        raise ValueError("compile_for_inference expects a model in eval mode: call model.eval() first "
                         "(training needs torch.compile without freezing)")
    options: dict[str, Any] = {"freezing": True, "max_autotune": max_autotune}  # Inductor settings of this compile
    if cuda_graphs:
        options["triton.cudagraphs"] = True
    return torch.compile(model, dynamic=dynamic, options=options)
