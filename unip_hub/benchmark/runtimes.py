"""Runtime variants of the benchmark cases: ours under ONNX Runtime (fp32 / int8), torch bf16/fp16, and timm
under ONNX Runtime on the same weights.

- ``ort-fp32`` / ``ort-int8``: :func:`unip_hub.runtime.load_runtime` (fp32: ``static_shape="auto"``, the graph
  exported at the case's input shape, or the slide windows' shape; int8: the dynamic-shape export quantised with
  its calibration frames). The agreement threshold is off here (random weights); the case's check reports the
  agreement with ours instead.
- ``torch-bf16`` / ``torch-fp16``: the eager model under ``torch.autocast``.
- ``timm-ort``: the timm baseline (:func:`~unip_hub.benchmark.baselines.timm_vit` /
  :func:`~unip_hub.benchmark.baselines.timm_segmenter`) exported with ``torch.onnx.export(dynamo=True)`` at the
  benchmark's input shape (static shapes: if anything, an advantage for timm) and run with the same session
  options as ours. Cached by the weights' sha256 and the shape.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

TensorFn = Callable[[torch.Tensor], torch.Tensor]

VARIANT_NAMES = {("onnxruntime", "fp32"): "ort-fp32", ("onnxruntime", "int8"): "ort-int8",
                 ("torch", "bf16"): "torch-bf16", ("torch", "fp16"): "torch-fp16"}


def runtime_pairs(runtimes: Sequence[str], precisions: Sequence[str], device: str) -> list[tuple[str, str]]:
    """The (runtime, precision) pairs to measure besides torch fp32 (= ``ours``): every pair that exists here."""
    pairs = [(r, p) for r in runtimes for p in precisions if (r, p) in VARIANT_NAMES]
    if torch.device(device).type != "cuda":
        pairs = [(r, p) for r, p in pairs if p != "fp16"]  # fp16 autocast is a GPU setting
    return pairs


def runtime_fns(model: nn.Module, pairs: Sequence[tuple[str, str]], cache_dir: str | os.PathLike | None,
                device: str, shape: tuple[int, int, int] | None = None) -> dict[str, TensorFn]:
    """Variant name -> the runtime's call of ``model`` (whole image) for every pair.

    With ``shape`` (batch, H, W), the shape the case calls it with, ONNX Runtime fp32 runs ``static_shape="auto"``
    and the static-shape graph of ``shape`` is built here, before the case's check; ``None`` (``--quick``): the
    dynamic-shape graph only.
    """
    from unip_hub.runtime import load_runtime

    fns: dict[str, TensorFn] = {}
    for runtime, precision in pairs:
        static = "auto" if (runtime, precision) == ("onnxruntime", "fp32") and shape is not None else None
        fn = load_runtime(model, runtime, precision, cache_dir=cache_dir, min_agreement=0.0, device=device,
                          progress=True, static_shape=static)
        if static is not None:
            fn.prepare(shape)
        fns[VARIANT_NAMES[runtime, precision]] = fn
    return fns


class TokensOf(nn.Module):
    """A timm ViT's ``forward_features`` as its ``forward`` (normalised tokens (B, 1 + N, C)), for the export."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.forward_features(x)


def _export_static(module: nn.Module, x: torch.Tensor, path: Path) -> None:
    import warnings

    from unip_hub.utils.atomic import atomic_path

    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (x,), dynamo=True, input_names=["images"], output_names=["output"],
                                    verbose=False)
        program.save(str(tmp))


def timm_ort_fn(module: nn.Module, example: torch.Tensor, cache_dir: str | os.PathLike | None) -> TensorFn:
    """``module`` (a timm baseline, CPU float32) exported at ``example``'s shape and run by ONNX Runtime."""
    from unip_hub.runtime.cache import CacheEntry, default_cache_dir, weights_sha256
    from unip_hub.runtime.sessions import OrtRuntime, RuntimeInfo

    module = module.float().cpu().eval()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    recipe = {"timm": type(module).__name__, "shape": list(example.shape), "torch": torch.__version__}
    entry = CacheEntry.of(folder, weights_sha256(module), recipe)
    if entry.load_meta() is None:
        print(f"exporting the timm baseline at {tuple(example.shape)} to ONNX ...", file=sys.stderr, flush=True)
        _export_static(module, example.float().cpu(), entry.graph)
        entry.save_meta({"recipe": recipe})
    return OrtRuntime(entry.graph, RuntimeInfo("onnxruntime", "fp32", entry.graph))
