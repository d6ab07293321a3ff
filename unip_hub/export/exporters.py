"""Exporting backbones and segmenters to ONNX, TorchScript and ``torch.export`` with dynamic batch, height, width.

Every export is checked before it is kept: the exported program is run (ONNX: with onnxruntime) at the example
size and at further sizes, and compared with the eager model; the file is written to a temporary sibling and
renamed into place only when every size agrees to ``atol`` (default 1e-4).

- Backbones take (B, C_in, H, W) with H and W multiples of the patch size (the position table is resampled inside
  the graph for every grid) and return the normalised tokens (B, 1 + H/16 * W/16, C), or the class token (B, C)
  with ``output="cls"``.
- Segmenters take any H and W (the graph pads to a multiple of 16 itself) and return logits (B, K, H, W) of the
  whole-image pass; sliding-window inference stays in Python (:meth:`Segmenter.slide_logits`) around the graph.
- TorchScript is traced; the size arithmetic is recorded, so the traced model is not fixed to the example size
  (the checks at other sizes prove it for each export).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unip_hub.constants import PATCH_SIZE
from unip_hub.export.modules import wrap_for_export
from unip_hub.layers.pos_embed import resample_with_matrices
from unip_hub.utils.atomic import atomic_path

FORMATS = ("onnx", "torchscript", "export")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "export": ".pt2"}
DEFAULT_SIZES = {"backbone": (224, 224), "segmenter": (512, 512)}


class ExportError(RuntimeError):
    """The exporter failed, or the exported program does not reproduce the eager model."""


@dataclass
class ExportResult:
    """What was written and how well it matched the eager model at each checked (H, W)."""

    path: Path
    format: str
    kind: str
    max_abs_error: dict[tuple[int, int], float] = field(default_factory=dict)

    def summary(self) -> str:
        errs = ", ".join(f"{h}x{w}: {e:.2e}" for (h, w), e in self.max_abs_error.items())
        return f"wrote {self.path} ({self.format}, {self.kind}); max |exported - eager| at {errs}"


def default_check_sizes(size: tuple[int, int], kind: str, patch: int = 16) -> list[tuple[int, int]]:
    """Two sizes other than ``size`` to verify at (for segmenters, not multiples of the patch size, >= 64)."""
    h, w = size
    half = (max(patch, h // 2 // patch * patch), max(patch, w // 2 // patch * patch))
    if kind == "segmenter":  # any size from 64 px
        return [(max(64, h // 2 + 5), w + 37), (h + 53, max(64, w // 2 - 3))]
    return [(half[0], w + 2 * patch), (h + 3 * patch, half[1])]


def _dynamic_shapes(kind: str, patch: int) -> dict:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1024)
    if kind == "backbone":  # the ViT needs multiples of the patch size
        return {"x": {0: batch, 2: patch * Dim("h_patches", min=2, max=512),
                      3: patch * Dim("w_patches", min=2, max=512)}}
    # segmenters pad in the graph: any size from 64 px (below that the stride-32 map would be 1 pixel, a size the
    # exporter specialises). DYNAMIC: the channels-last maps of the pyramid raise guards such as 1 % (64 W/16) != 0
    # that hold for every size but that the exporter cannot prove; they become run-time checks
    return {"x": {0: batch, 2: Dim.DYNAMIC(min=64, max=8192), 3: Dim.DYNAMIC(min=64, max=8192)}}


def _write(module: nn.Module, x: torch.Tensor, fmt: str, kind: str, tmp: Path, opset: int | None,
           dynamic: bool = True) -> None:
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants: verified
            traced = torch.jit.trace(module, (x,), check_trace=False)
        torch.jit.save(traced, str(tmp))
    elif fmt == "export":
        program = torch.export.export(module, (x,), dynamic_shapes=_dynamic_shapes(kind, PATCH_SIZE))
        torch.export.save(program, str(tmp))
    else:
        kwargs = {} if opset is None else {"opset_version": opset}
        shapes = _dynamic_shapes(kind, PATCH_SIZE) if dynamic else None  # static: ORT folds the shape chains
        with resample_with_matrices():  # ONNX Runtime's cubic Resize is slow: the position resize as matmuls
            program = torch.onnx.export(module, (x,), dynamo=True, dynamic_shapes=shapes,
                                        input_names=["images"], output_names=["output"], verbose=False, **kwargs)
        program.save(str(tmp))


def _runner(fmt: str, path: Path) -> Callable[[torch.Tensor], np.ndarray]:
    if fmt == "torchscript":
        module = torch.jit.load(str(path))
        return lambda x: module(x).detach().numpy()
    if fmt == "export":
        module = torch.export.load(str(path)).module()
        return lambda x: module(x).detach().numpy()
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ExportError("checking an ONNX export needs onnxruntime: pip install 'unip[export]'") from e
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x.numpy()})[0]


def _eager_cpu(model: nn.Module) -> nn.Module:
    """``model`` itself when it is float32 on the CPU, else a float32 CPU copy (the caller's model stays put)."""
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        return copy.deepcopy(model).float().cpu()
    return model


def _example_inputs(size: tuple[int, int], check_sizes: Sequence[Sequence[int]] | None, kind: str, batch: int,
                    in_chans: int) -> dict[tuple[int, int], torch.Tensor]:
    """Seeded inputs: ``batch`` images at the example size, one at each check size."""
    sizes = [size] + [(int(h), int(w)) for h, w in (check_sizes or default_check_sizes(size, kind))]
    gen = torch.Generator().manual_seed(0)
    return {hw: torch.randn(batch if hw == size else 1, in_chans, *hw, generator=gen) for hw in sizes}


def _verify(result: ExportResult, eager: Callable[[torch.Tensor], torch.Tensor],
            run: Callable[[torch.Tensor], np.ndarray], inputs: dict[tuple[int, int], torch.Tensor],
            atol: float) -> None:
    """Fills ``result.max_abs_error`` per size; raises :class:`ExportError` on a failure, a shape or an error."""
    kind = result.kind
    with torch.inference_mode():
        for hw, x in inputs.items():
            expected = eager(x).numpy()
            try:
                got = run(x)
            except Exception as e:  # onnxruntime / guard failures of the exported program
                raise ExportError(f"the exported {kind} fails at {hw}: {type(e).__name__}: {e}") from e
            if got.shape != expected.shape:
                raise ExportError(f"exported {kind} gives shape {got.shape} at {hw}, eager {expected.shape}")
            result.max_abs_error[hw] = float(abs(got - expected).max())
    bad = {hw: e for hw, e in result.max_abs_error.items() if not e <= atol}
    if bad:
        raise ExportError(f"exported {kind} differs from eager by more than {atol} at {bad}; not written")


def _output_path(path: str | os.PathLike, format: str) -> Path:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as model{SUFFIXES[format]}")
    return path


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    size: Sequence[int] | None = None,
    check_sizes: Sequence[Sequence[int]] | None = None,
    batch: int = 2,
    output: str = "tokens",
    atol: float = 1e-4,
    opset: int | None = None,
    dynamic: bool = True,
) -> ExportResult:
    """Exports ``model`` (a UnipViT or a Segmenter) with dynamic batch/height/width and verifies it.

    Args:
        model: The model; exported in eval mode on the CPU in float32.
        path: Output file (``.onnx``, ``.pt`` TorchScript, ``.pt2`` torch.export).
        format: ``onnx``, ``torchscript`` or ``export``.
        size: Example (H, W) the graph is captured at (backbones: multiples of 16); default 224 x 224 for a
            backbone, 512 x 512 for a segmenter.
        check_sizes: Further (H, W) to verify at; default :func:`default_check_sizes`.
        batch: Example batch (2, so the batch axis stays dynamic).
        output: Backbones: ``tokens`` (B, 1 + N, C) or ``cls`` (B, C).
        atol: Largest accepted ``|exported - eager|`` at every checked size.
        opset: ONNX opset (default: the exporter's).
        dynamic: ``False`` (ONNX only) fixes batch, H and W to the example's (``batch`` x ``size``) and checks
            at that shape only: ORT can then fold the position-embedding resize and the reshape chains.

    Raises:
        ExportError: the exporter failed, or the program differs from eager by more than ``atol`` (nothing is
            written then).
    """
    path = _output_path(path, format)
    model = _eager_cpu(model)
    was_training = model.training
    module, kind = wrap_for_export(model.eval(), output, onnx=format == "onnx")
    size = DEFAULT_SIZES[kind] if size is None else (int(size[0]), int(size[1]))
    if kind == "backbone" and (size[0] % model.patch_size or size[1] % model.patch_size):
        raise ValueError(f"backbone example size {size} must be a multiple of {model.patch_size}")
    in_chans = model.in_chans if kind == "backbone" else model.backbone.in_chans
    inputs = _example_inputs(size, check_sizes, kind, batch, in_chans)
    if not dynamic:
        inputs = {size: inputs[size]}
    eager = model if kind == "segmenter" else module  # the segmenter's own forward, the backbone's tokens
    try:
        with atomic_path(path) as tmp:
            try:
                _write(module, inputs[size], format, kind, tmp, opset, dynamic or format != "onnx")
            except Exception as e:  # exporters raise many types; say which step failed
                raise ExportError(f"{format} export of the {kind} failed: {type(e).__name__}: {e}") from e
            result = ExportResult(path, format, kind)
            _verify(result, eager, _runner(format, tmp), inputs, atol)
        return result
    finally:
        model.train(was_training)
