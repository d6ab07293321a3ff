"""Building the ONNX Runtime graphs: the verified fp32 export, and its int8 version.

- **fp32**: :func:`unip_hub.export.export_model` (dynamic batch, H, W; checked against eager at three sizes).
- **int8** (ONNX Runtime's quantisation tools, on the fp32 graph):

  1. *static* QDQ quantisation of the convolutions of the neck and the decode head (per-channel symmetric int8
     weights, symmetric int8 activations whose ranges are set on the calibration frames: measured on the 2-core
     Xeon, the fastest of the QDQ/QOperator x uint8/int8 combinations, about 1.7x uint8 activations), except the
     patch embedding (it reads the image) and the head's last convolution (the logits; kept float for accuracy);
     the LL-FPN's transposed convolutions stay float too;
  2. *dynamic* quantisation of the weight matmuls (qkv, proj, fc1, fc2 of every block: int8 weights, the
     activations quantised per call, so no calibration is needed for them).

  LayerNorm, softmax, GELU, the attention matmuls (q k^T, attn v) and the resizes stay float32.
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


def build_fp32(model: nn.Module, out: Path, static: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """Exports ``model`` to ``out`` (ONNX, atomic) and returns the export's errors per checked size.

    ``static`` (batch, H, W) fixes the graph's input shape (one shape, checked at it); else batch, H, W are dynamic.
    """
    from unip_hub.export import export_model

    kind = model_kind(model)
    if static is not None:
        result = export_model(model, out, "onnx", size=static[1:], batch=static[0], atol=EXPORT_ATOL, dynamic=False)
    else:
        result = export_model(model, out, "onnx", size=EXAMPLE_SIZES[kind], atol=EXPORT_ATOL)
    return {"export_max_abs_error": {f"{h}x{w}": e for (h, w), e in result.max_abs_error.items()}}


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


def build_int8(fp32: Path, out: Path, kind: str, calibration: CalibrationSet) -> dict[str, Any]:
    """The int8 graph of ``fp32`` (see the module docstring), written atomically to ``out``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = Path(tempfile.mkdtemp(prefix=".unip-int8-", dir=out.parent))
    try:
        with _quiet_quantizer():
            src, float_convs = fp32, []
            if kind == "segmenter":
                src = tmp / "convs.onnx"
                float_convs = _static_convs(fp32, src, calibration)
            with atomic_path(out) as dst:
                quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"], per_channel=False,
                                 weight_type=QuantType.QInt8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"int8": {"static": "Conv (QDQ, s8s8, per-channel)" if kind == "segmenter" else None,
                     "dynamic": "MatMul/Gemm with weights", "float_convs": float_convs,
                     "calibration": calibration.source}}
