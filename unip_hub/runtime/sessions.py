"""The callables a runtime gives: normalised images (B, C_in, H, W) -> the model's output, as a float32 tensor.

- :class:`TorchRuntime`: the eager model under ``torch.inference_mode`` (with ``torch.autocast`` for bf16/fp16).
- :class:`OrtRuntime`: an ONNX Runtime session of an exported graph, every graph optimisation on (constant
  folding, LayerNorm / GELU / MatMul+Add fusions, int8 kernels for quantised graphs), threads as torch's.

Both are what a predictor's model call can be replaced with (:meth:`unip_hub.inference.Predictor.forward`), and
what ``slide`` inference calls once per batch of windows.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class RuntimeInfo:
    """What a runtime runs: ``runtime``, ``precision``, the graph file (ONNX Runtime) and its build facts."""

    runtime: str
    precision: str
    path: Path | None = None
    cached: bool = False
    accuracy: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.runtime}-{self.precision}"


class TorchRuntime:
    """``model(x)`` in eval mode without autograd; bf16/fp16 through ``torch.autocast``; float32 out."""

    def __init__(self, model: nn.Module, precision: str = "fp32", fn: Any = None) -> None:
        if precision not in ("fp32", *AUTOCAST):
            raise ValueError(f"the torch runtime runs fp32, bf16 or fp16, not {precision!r} (int8: onnxruntime)")
        self.model = model.eval()
        self.fn = fn if fn is not None else model
        self.info = RuntimeInfo("torch", precision)
        self.device = next(model.parameters()).device
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 is a GPU precision; on the CPU use fp32, bf16 or onnxruntime int8")

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = AUTOCAST.get(self.info.precision)
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            return self.fn(x.to(self.device)).float()


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime options: all graph optimisations, ``threads`` intra-op threads (default: torch's)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: the optimiser's notes about unused initialisers are not for users
    return so


class OrtRuntime:
    """An ONNX Runtime session of ``path`` (CPU; CUDA first when ``device`` is cuda and the provider exists)."""

    def __init__(self, path: str | os.PathLike, info: RuntimeInfo, device: str | torch.device = "cpu",
                 threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RuntimeError("the onnxruntime runtime needs onnxruntime: pip install 'unip[export]'") from e
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.info = info
        self.device = torch.device("cpu")

    def session_for(self, shape: tuple[int, int, int]) -> OrtRuntime:
        """The session an input of ``shape`` (batch, H, W) runs on: this one (as :class:`ShapedRuntime` has it)."""
        return self

    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 (B, C_in, H, W) array -> output array."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.run(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(out).to(x.device)
