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
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FORMATS = ("onnx", "torchscript", "export")
_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "export": ".pt2"}


class ExportError(RuntimeError):
    """The exporter failed, or the exported program does not reproduce the eager model."""


class BackboneForExport(nn.Module):
    """A UnipViT as a single-output module: normalised tokens (B, 1 + N, C) or the class token (B, C)."""

    def __init__(self, backbone: nn.Module, output: str = "tokens") -> None:
        super().__init__()
        if output not in ("tokens", "cls"):
            raise ValueError(f"output must be 'tokens' or 'cls', got {output!r}")
        self.backbone = backbone
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone.forward_features(x)  # (B, C_in, H, W) -> (B, 1 + N, C)
        return tokens if self.output == "tokens" else tokens[:, 0]


class AdaptiveAvgPool2dForExport(nn.Module):
    """``nn.AdaptiveAvgPool2d`` written as two averaging matrices built from the input size, so an ONNX graph pools
    correctly at every size (the ONNX exporter otherwise bakes the example's bins into gather indices)."""

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    @staticmethod
    def _bins(n: int, s: int, like: torch.Tensor) -> torch.Tensor:
        # (s, n): row i averages inputs floor(i n / s) .. ceil((i + 1) n / s) - 1, as adaptive pooling does
        j = torch.arange(n, device=like.device)
        i = torch.arange(s, device=like.device)
        start, end = (i * n) // s, ((i + 1) * n + s - 1) // s
        mask = ((j[None] >= start[:, None]) & (j[None] < end[:, None])).to(like.dtype)
        return mask / mask.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self._bins(x.shape[-2], self.output_size[0], x)  # (s_h, H)
        cols = self._bins(x.shape[-1], self.output_size[1], x)  # (s_w, W)
        return rows @ x @ cols.transpose(0, 1)  # (B, C, H, W) -> (B, C, s_h, s_w)


class SegmenterForExport(nn.Module):
    """A Segmenter's whole-image forward written so a graph keeps H and W symbolic: it always pads to a multiple
    of the patch size (possibly by 0), then backbone -> neck -> decode head -> resize -> crop, as ``forward``."""

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seg = self.segmenter
        p = seg.patch_size
        h, w = x.shape[-2], x.shape[-1]
        hp, wp = (h + p - 1) // p * p, (w + p - 1) // p * p
        xp = F.pad(x, (0, wp - w, 0, hp - h))  # (B, C_in, H, W) -> (B, C_in, H_pad, W_pad), zeros = mean gray
        maps = list(seg.backbone.get_intermediate_layers(xp, n=seg.layers, reshape=True, norm=False))
        feats = maps if seg.neck is None else list(seg.neck(maps))  # NCHW (channels-last strides add shape guards)
        logits = seg.decode_head(feats)  # (B, K, H_pad/4, W_pad/4)
        logits = F.interpolate(logits, size=(hp, wp), mode="bilinear", align_corners=seg.align_corners)
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        return logits.index_select(2, rows).index_select(3, cols)  # crop to (B, K, H, W) without a size guard


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


def _onnx_friendly(seg: nn.Module) -> nn.Module:
    """A copy of ``seg`` whose adaptive average pools are :class:`AdaptiveAvgPool2dForExport` (same results)."""
    seg = copy.deepcopy(seg)
    for name, mod in list(seg.named_modules()):
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            parent, _, leaf = name.rpartition(".")
            setattr(seg.get_submodule(parent) if parent else seg, leaf, AdaptiveAvgPool2dForExport(mod.output_size))
    return seg


def _wrap(model: nn.Module, output: str, fmt: str) -> tuple[nn.Module, str]:
    from unip_hub.models.segmenter import Segmenter
    from unip_hub.models.vit import UnipViT

    if isinstance(model, Segmenter):
        return SegmenterForExport(_onnx_friendly(model) if fmt == "onnx" else model).eval(), "segmenter"
    if isinstance(model, UnipViT):
        return BackboneForExport(model, output).eval(), "backbone"
    raise TypeError(f"can export a UnipViT backbone or a Segmenter, not {type(model).__name__}")


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
    # exporter specialises)
    return {"x": {0: batch, 2: Dim("height", min=64, max=8192), 3: Dim("width", min=64, max=8192)}}


def _write(module: nn.Module, x: torch.Tensor, fmt: str, kind: str, tmp: Path, opset: int | None) -> None:
    patch = 16
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants: verified below
            traced = torch.jit.trace(module, (x,), check_trace=False)
        torch.jit.save(traced, str(tmp))
    elif fmt == "export":
        program = torch.export.export(module, (x,), dynamic_shapes=_dynamic_shapes(kind, patch))
        torch.export.save(program, str(tmp))
    else:
        kwargs = {} if opset is None else {"opset_version": opset}
        program = torch.onnx.export(module, (x,), dynamo=True, dynamic_shapes=_dynamic_shapes(kind, patch),
                                    input_names=["images"], output_names=["output"], verbose=False, **kwargs)
        program.save(str(tmp))


def _runner(fmt: str, path: Path):
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


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    size: Sequence[int] = (224, 224),
    check_sizes: Sequence[Sequence[int]] | None = None,
    batch: int = 2,
    output: str = "tokens",
    atol: float = 1e-4,
    opset: int | None = None,
) -> ExportResult:
    """Exports ``model`` (a UnipViT or a Segmenter) with dynamic batch/height/width and verifies it.

    Args:
        model: The model; exported in eval mode on the CPU in float32.
        path: Output file (``.onnx``, ``.pt`` TorchScript, ``.pt2`` torch.export).
        format: ``onnx``, ``torchscript`` or ``export``.
        size: Example (H, W) the graph is captured at (backbones: multiples of 16).
        check_sizes: Further (H, W) to verify at; default :func:`default_check_sizes`.
        batch: Example batch (2, so the batch axis stays dynamic).
        output: Backbones: ``tokens`` (B, 1 + N, C) or ``cls`` (B, C).
        atol: Largest accepted ``|exported - eager|`` at every checked size.
        opset: ONNX opset (default: the exporter's).

    Raises:
        ExportError: the exporter failed, or the program differs from eager by more than ``atol`` (nothing is
            written then).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as model{_SUFFIX[format]}")
    params = list(model.parameters())
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in params):
        model = copy.deepcopy(model).float().cpu()  # the caller's model stays where it is
    was_training = model.training
    module, kind = _wrap(model.eval(), output, format)
    size = (int(size[0]), int(size[1]))
    if kind == "backbone" and (size[0] % model.patch_size or size[1] % model.patch_size):
        raise ValueError(f"backbone example size {size} must be a multiple of {model.patch_size}")
    sizes = [size] + [(int(h), int(w)) for h, w in (check_sizes or default_check_sizes(size, kind))]
    in_chans = model.in_chans if kind == "backbone" else model.backbone.in_chans
    gen = torch.Generator().manual_seed(0)
    inputs = {hw: torch.randn(batch if hw == size else 1, in_chans, *hw, generator=gen) for hw in sizes}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _write(module, inputs[size], format, kind, tmp, opset)
        except Exception as e:  # exporters raise many types; say which step failed
            raise ExportError(f"{format} export of the {kind} failed: {type(e).__name__}: {e}") from e
        run = _runner(format, tmp)
        result = ExportResult(path, format, kind)
        with torch.inference_mode():
            for hw, x in inputs.items():
                expected = (model(x) if kind == "segmenter" else module(x)).numpy()  # the model's own forward
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
        os.replace(tmp, path)
        return result
    finally:
        tmp.unlink(missing_ok=True)
        model.train(was_training)
