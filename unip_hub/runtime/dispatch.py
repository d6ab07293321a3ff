""":func:`load_runtime`: one switch from a model to the callable that runs it (torch eager, ONNX Runtime fp32/int8).

ONNX Runtime graphs are built once per weights and recipe and cached (:mod:`unip_hub.runtime.cache`); an int8
graph is measured against fp32 torch on its calibration frames when it is built, and that measurement is checked
against ``min_agreement`` every time it is loaded.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unip_hub.constants import PRECISIONS, RUNTIMES
from unip_hub.runtime.agreement import DEFAULT_MIN_AGREEMENT, check_agreement, compare_outputs
from unip_hub.runtime.build import EXAMPLE_SIZES, build_fp32, build_int8, model_kind
from unip_hub.runtime.cache import CacheEntry, default_cache_dir, weights_sha256
from unip_hub.runtime.calibration import CalibrationSet, calibration_set
from unip_hub.runtime.sessions import OrtRuntime, RuntimeInfo, TorchRuntime
from unip_hub.runtime.shaped import Shape, ShapedRuntime

# bump when the build recipe changes (3: attention fused; 4: the position resize as matmuls; 5: every head conv
# int8 in ONNX Runtime): older graphs are rebuilt
RECIPE_VERSION = 5
__all__ = ["PRECISIONS", "RUNTIMES", "Runtime", "check_choice", "load_runtime", "torch_runtime"]

_ALLOWED = {"torch": ("fp32", "bf16", "fp16"), "onnxruntime": ("fp32", "int8")}

Runtime = TorchRuntime | OrtRuntime | ShapedRuntime


def check_choice(runtime: str, precision: str) -> None:
    """Raises ``ValueError`` for a runtime / precision pair that does not exist."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if precision not in _ALLOWED[runtime]:
        hint = " (int8 runs under --runtime onnxruntime)" if precision == "int8" else ""
        raise ValueError(f"the {runtime} runtime runs {'/'.join(_ALLOWED[runtime])}, not {precision!r}{hint}")


def _recipe(model: nn.Module, kind: str, precision: str, calibration: CalibrationSet | None,
            static: tuple[int, int, int] | None = None) -> dict[str, Any]:
    import onnxruntime as ort

    recipe = {"version": RECIPE_VERSION, "kind": kind, "class": type(model).__name__, "precision": precision,
              "example": EXAMPLE_SIZES[kind], "torch": torch.__version__.split("+")[0],
              "onnxruntime": ort.__version__}
    if calibration is not None:
        recipe["calibration"] = calibration.digest
    if static is not None:
        recipe["static"] = list(static)
    return recipe


def torch_runtime(model: nn.Module, precision: str = "fp32") -> TorchRuntime:
    """The eager runtime: a segmenter's logits, a backbone's ``forward_features`` tokens (as exported)."""
    return TorchRuntime(model, precision, None if model_kind(model) == "segmenter" else model.forward_features)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _entry(folder: Path, weights: str, recipe: dict[str, Any]) -> tuple[CacheEntry, dict[str, Any] | None]:
    entry = CacheEntry.of(folder, weights, recipe)
    return entry, entry.load_meta()


def _fp32_graph(model: nn.Module, kind: str, folder: Path, weights: str, progress: bool,
                static: tuple[int, int, int] | None = None) -> tuple[Path, bool]:
    """The cached fp32 graph of ``model`` (built when missing; ``static``: one fixed shape); (path, was it cached)."""
    recipe = _recipe(model, kind, "fp32", None, static)
    entry, meta = _entry(folder, weights, recipe)
    if meta is not None:
        return entry.graph, True
    _say(progress, f"exporting the {kind} to ONNX once (cached in {folder}) ...")
    facts = build_fp32(model, entry.graph, static)
    entry.save_meta({"recipe": recipe, "weights_sha256": weights, **facts})
    return entry.graph, False


def _int8_graph(model: nn.Module, kind: str, folder: Path, weights: str, calibration: CalibrationSet,
                progress: bool) -> tuple[Path, dict[str, Any], bool]:
    """The cached int8 graph and its accuracy report (built and measured when missing)."""
    recipe = _recipe(model, kind, "int8", calibration)
    entry, meta = _entry(folder, weights, recipe)
    if meta is not None:
        return entry.graph, meta.get("accuracy", {}), True
    fp32, _ = _fp32_graph(model, kind, folder, weights, progress)
    _say(progress, f"quantising the {kind} to int8 on {len(calibration.frames)} calibration frame(s) ...")
    facts = build_int8(fp32, entry.graph, kind, calibration)
    candidate = OrtRuntime(entry.graph, RuntimeInfo("onnxruntime", "int8"))
    accuracy = compare_outputs(torch_runtime(model), candidate, calibration.frames, calibration.labels,
                               getattr(model, "num_classes", None))
    entry.save_meta({"recipe": recipe, "weights_sha256": weights, "accuracy": accuracy, **facts})
    return entry.graph, accuracy, False


def _static_builder(model: nn.Module, kind: str, folder: Path, weights: str, progress: bool,
                    device: str | torch.device, threads: int | None) -> Callable[[Shape, bool], OrtRuntime | None]:
    """``build(shape, only_cached)`` of a :class:`ShapedRuntime`: the cached static-shape session of ``shape``."""

    def build(shape: Shape, only_cached: bool) -> OrtRuntime | None:
        if only_cached and _entry(folder, weights, _recipe(model, kind, "fp32", None, shape))[1] is None:
            return None
        path, cached = _fp32_graph(model, kind, folder, weights, progress, shape)
        return OrtRuntime(path, RuntimeInfo("onnxruntime", "fp32", path, cached), device, threads)

    return build


def load_runtime(
    model: nn.Module,
    runtime: str = "torch",
    precision: str = "fp32",
    *,
    cache_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    calibration: str | os.PathLike | CalibrationSet | None = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    device: str | torch.device | None = None,
    threads: int | None = None,
    progress: bool = False,
    static_shape: tuple[int, int, int] | str | None = None,
) -> Runtime:
    """A callable running ``model``: normalised (B, C_in, H, W) -> float32 logits (B, K, H, W) of a Segmenter, or
    the normalised tokens (B, 1 + N, C) of a UnipViT (``forward_features``, what the export holds).

    Args:
        model: The model (its current weights are what is exported and hashed).
        runtime: ``torch`` (eager) or ``onnxruntime`` (the exported graph, all graph optimisations on).
        precision: ``fp32``; ``int8`` with onnxruntime; ``bf16`` / ``fp16`` (GPU) with torch (autocast).
        cache_dir: Where built graphs go (default: next to ``checkpoint``, else ``~/.cache/unip/runtime``).
        checkpoint: The file the model was loaded from (its folder holds the cache by default).
        calibration: int8 calibration frames: a folder / files of thermal images, a :class:`CalibrationSet`, or
            ``None`` for seeded synthetic scenes.
        min_agreement: Smallest accepted pixel agreement of the int8 masks with fp32 torch on the calibration
            frames (segmenters).
        device: Torch runtime device (default: the model's); ``cuda`` lets ONNX Runtime use its CUDA provider.
        threads: ONNX Runtime intra-op threads (default: torch's).
        progress: Say on stderr when a graph is built.
        static_shape: onnxruntime fp32 only: (batch, H, W) the graph is exported at with a fixed input shape
            (cached per shape; other shapes are refused by the session), or ``"auto"``: a
            :class:`~unip_hub.runtime.shaped.ShapedRuntime` running a static-shape graph for every input shape that
            repeats (built at its second call, kept for the 4 most recent shapes) and the dynamic graph otherwise.
            For fixed-size inputs (benchmarks, slide windows of 512 x 512, video frames).

    Raises:
        ValueError: An unknown runtime / precision pair.
        AccuracyError: The int8 model agrees with fp32 torch on fewer pixels than ``min_agreement``.
    """
    check_choice(runtime, precision)
    if runtime == "torch":
        return torch_runtime(model.to(device) if device is not None else model, precision)
    cpu = copy.deepcopy(model).float().cpu().eval()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(checkpoint)
    kind, weights = model_kind(cpu), weights_sha256(cpu)
    if static_shape is not None and precision != "fp32":
        raise ValueError("static_shape is an onnxruntime fp32 option")
    if precision == "fp32":
        auto = isinstance(static_shape, str)
        if auto and static_shape != "auto":
            raise ValueError(f"static_shape must be (batch, H, W), 'auto' or None, got {static_shape!r}")
        static = None if static_shape is None or auto else tuple(int(v) for v in static_shape)
        path, cached = _fp32_graph(cpu, kind, folder, weights, progress, static)
        session = OrtRuntime(path, RuntimeInfo(runtime, precision, path, cached), device or "cpu", threads)
        if not auto:
            return session
        return ShapedRuntime(session, _static_builder(cpu, kind, folder, weights, progress, device or "cpu", threads))
    calib = calibration_set(cpu, calibration)
    path, accuracy, cached = _int8_graph(cpu, kind, folder, weights, calib, progress)
    check_agreement(accuracy, min_agreement, f"the int8 {kind} ({path.name})")
    return OrtRuntime(path, RuntimeInfo(runtime, precision, path, cached, accuracy), device or "cpu", threads)
