"""Building the ONNX Runtime graphs: the verified fp32 export, and its int8 version.

- **fp32**: :func:`unip_hub.export.export_model` (dynamic batch, H, W; checked against eager at three sizes), then
  every block's attention fused into one ``MultiHeadAttention`` node (:mod:`unip_hub.runtime.fusion`; checked
  against eager again, else the unfused graph is kept).
- **int8** (ONNX Runtime's quantisation tools, on the fp32 graph):

  1. *static* QDQ quantisation of the convolutions of the neck and the decode head (per-channel symmetric int8
     weights, symmetric int8 activations whose ranges are set on the calibration frames: measured on the 2-core
     Xeon, the fastest of the QDQ/QOperator x uint8/int8 combinations, about 1.7x uint8 activations), except the
     patch embedding (it reads the image) and the head's last convolution (the logits; kept float for accuracy);
     the LL-FPN's transposed convolutions stay float too;
  2. *dynamic* quantisation of the weight matmuls (qkv, proj, fc1, fc2 of every block: int8 weights, the
     activations quantised per call, so no calibration is needed for them).

  LayerNorm, GELU, the fused attention (q k^T, softmax, attn v in one MultiHeadAttention node) and the resizes
  stay float32; a float op that shares a quantised conv's input reads the float tensor
  (:func:`_unshare_conv_inputs`), so that ONNX Runtime fuses every quantised conv into ``QLinearConv``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from unip_hub.runtime.calibration import CalibrationSet
from unip_hub.utils.atomic import atomic_path

EXAMPLE_SIZES = {"backbone": (224, 224), "segmenter": (128, 160)}
EXPORT_ATOL = 1e-3  # |ORT - eager| accepted at the checked sizes (measured: ~1e-5 for ViT-S segmenter logits)


def model_kind(model: nn.Module) -> str:
    """``"segmenter"`` (has a decode head) or ``"backbone"``."""
    return "segmenter" if hasattr(model, "decode_head") else "backbone"


def _attention_layout(model: nn.Module) -> tuple[list[int], list[int]]:
    """(heads, width) of every attention of ``model``'s backbone, in block order."""
    blocks = (model.backbone if model_kind(model) == "segmenter" else model).blocks
    return [b.attn.num_heads for b in blocks], [b.attn.qkv.out_features // 3 for b in blocks]


def _errors(model: nn.Module, path: Path, shapes: list[tuple[int, int, int]]) -> dict[str, float]:
    """max |ONNX Runtime - eager| of the graph at ``path`` per (batch, H, W), on seeded inputs."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    segmenter = model_kind(model) == "segmenter"
    fn, in_chans = (model, model.backbone.in_chans) if segmenter else (model.forward_features, model.in_chans)
    gen = torch.Generator().manual_seed(0)
    errors = {}
    with torch.inference_mode():
        for b, h, w in shapes:
            x = torch.randn(b, in_chans, h, w, generator=gen)  # (B, C_in, H, W)
            errors[f"{h}x{w}"] = float(np.abs(session.run(None, {name: x.numpy()})[0] - fn(x).numpy()).max())
    return errors


def _fuse(model: nn.Module, out: Path, shapes: list[tuple[int, int, int]]) -> dict[str, Any]:
    """Fuses the attentions of the exported graph ``out`` in place when the fused graph still matches eager."""
    from unip_hub.runtime.fusion import fuse_attention

    tmp = out.with_name(f".{out.stem}.fused.onnx")
    try:
        fused = fuse_attention(out, tmp, *_attention_layout(model))
        errors = _errors(model, tmp, shapes) if fused else {}
        if fused and max(errors.values()) <= EXPORT_ATOL:
            tmp.replace(out)
            return {"attention_fused": fused, "fused_max_abs_error": errors}
        return {"attention_fused": 0, "fusion_refused": f"max error {errors}" if fused else "no pattern"}
    except Exception as error:  # the unfused export is verified and kept
        return {"attention_fused": 0, "fusion_refused": f"{type(error).__name__}: {error}"}
    finally:
        tmp.unlink(missing_ok=True)


def build_fp32(model: nn.Module, out: Path, static: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """Exports ``model`` to ``out`` (ONNX, atomic), fuses its attentions (:mod:`unip_hub.runtime.fusion`) and
    returns the export's errors per checked size and the fusion's.

    ``static`` (batch, H, W) fixes the graph's input shape (one shape, checked at it); else batch, H, W are dynamic.
    The fused graph is checked against eager at the export's sizes (batch 1; ``EXPORT_ATOL``); when it is not
    within it, the verified unfused export is kept.
    """
    from unip_hub.export import export_model

    kind = model_kind(model)
    if static is not None:
        result = export_model(model, out, "onnx", size=static[1:], batch=static[0], atol=EXPORT_ATOL, dynamic=False)
    else:
        result = export_model(model, out, "onnx", size=EXAMPLE_SIZES[kind], atol=EXPORT_ATOL)
    shapes = [static] if static is not None else [(1, h, w) for h, w in result.max_abs_error]
    facts = {"export_max_abs_error": {f"{h}x{w}": e for (h, w), e in result.max_abs_error.items()}}
    return facts | _fuse(model, out, shapes)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantiser logs advice through the root logger; keep it out of the user's terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _conv_nodes(path: Path) -> tuple[list[str], list[str]]:
    """(the convolutions to quantise statically, the ones kept float: the first and the last in graph order)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    keep = [convs[0], convs[-1]] if len(convs) > 1 else convs
    return [c for c in convs if c not in keep], keep


class _Frames:
    """The calibration frames as onnxruntime's ``CalibrationDataReader`` wants them (one dict per call)."""

    def __init__(self, name: str, calibration: CalibrationSet) -> None:
        self.items = iter([{name: f.numpy()} for f in calibration.frames])

    def get_next(self) -> dict | None:
        return next(self.items, None)


def _input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name


def _static_convs(src: Path, dst: Path, calibration: CalibrationSet) -> list[str]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    convs, keep = _conv_nodes(src)
    quantize_static(str(src), str(dst), _Frames(_input_name(src), calibration), quant_format=QuantFormat.QDQ,
                    nodes_to_quantize=convs, nodes_to_exclude=keep, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": True})
    return keep


def _unshare_conv_inputs(path: Path) -> int:
    """Rewires float consumers of a quantised conv's input to the float tensor itself; returns how many.

    When a tensor feeds a quantised conv and also a float op (UPerNet: a top-down sum read by its 3x3 conv and by
    the resize to the next level; the stride-16 map read by its lateral conv and by the max pool), the quantiser
    writes one ``QuantizeLinear -> DequantizeLinear`` pair shared by both, and ONNX Runtime (1.32) then runs that
    conv as float ``DequantizeLinear -> Conv`` instead of ``QLinearConv``: 4 of the 19 head convs of a ViT-S
    segmenter, 114 of its 570 int8 milliseconds at 512x640. The float op reads the unquantised tensor instead (no
    rounding, so no less accurate), the conv keeps its pair and is fused.
    """
    import onnx

    model = onnx.load(str(path))
    nodes = model.graph.node
    producer = {o: n for n in nodes for o in n.output}
    users: dict[str, list[Any]] = {}
    for n in nodes:
        for name in n.input:
            users.setdefault(name, []).append(n)
    rewired = 0
    for dq in (n for n in nodes if n.op_type == "DequantizeLinear"):
        q, readers = producer.get(dq.input[0]), users.get(dq.output[0], [])
        if q is None or q.op_type != "QuantizeLinear" or not any(r.op_type == "Conv" for r in readers):
            continue
        for r in readers:
            if r.op_type != "Conv":
                for k, name in enumerate(r.input):
                    if name == dq.output[0]:
                        r.input[k] = q.input[0]  # the float tensor the pair quantises
                        rewired += 1
    if rewired:
        onnx.save(model, str(path))
    return rewired


def build_int8(fp32: Path, out: Path, kind: str, calibration: CalibrationSet) -> dict[str, Any]:
    """The int8 graph of ``fp32`` (see the module docstring), written atomically to ``out``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = Path(tempfile.mkdtemp(prefix=".unip-int8-", dir=out.parent))
    try:
        with _quiet_quantizer():
            src, float_convs, rewired = fp32, [], 0
            if kind == "segmenter":
                src = tmp / "convs.onnx"
                float_convs = _static_convs(fp32, src, calibration)
                rewired = _unshare_conv_inputs(src)
            with atomic_path(out) as dst:
                quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"], per_channel=False,
                                 weight_type=QuantType.QInt8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"int8": {"static": "Conv (QDQ, s8s8, per-channel)" if kind == "segmenter" else None,
                     "dynamic": "MatMul/Gemm with weights", "float_convs": float_convs, "unshared_inputs": rewired,
                     "calibration": calibration.source}}
