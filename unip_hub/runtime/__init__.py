"""Deployment runtimes behind one switch: torch eager (fp32, bf16/fp16 autocast) and ONNX Runtime (fp32, int8).

>>> from unip_hub.runtime import load_runtime
>>> run = load_runtime(seg, runtime="onnxruntime", precision="int8")   # exported + quantised once, cached
>>> logits = run(x)                                                      # (B, C_in, H, W) -> (B, K, H, W)

- :mod:`~unip_hub.runtime.dispatch`: :func:`load_runtime` (the switch), the cache lookups.
- :mod:`~unip_hub.runtime.sessions`: the callables (:class:`TorchRuntime`, :class:`OrtRuntime`).
- :mod:`~unip_hub.runtime.shaped`: :class:`ShapedRuntime`, static-shape fp32 sessions for shapes that repeat.
- :mod:`~unip_hub.runtime.build`: the fp32 export and the int8 recipe (static convs, dynamic matmuls).
- :mod:`~unip_hub.runtime.calibration`: calibration frames (files or synthetic scenes).
- :mod:`~unip_hub.runtime.agreement`: agreement with fp32 torch (logits, masks, mIoU) and the refusal.
- :mod:`~unip_hub.runtime.cache`: cache folder and keys (sha256 of the weights and of the recipe).
- :mod:`~unip_hub.runtime.op_profile`: kernel time per operator type of an ONNX Runtime graph (its own profiler).

Names load their module on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from unip_hub.utils.lazy import lazy_attributes

_EXPORTS: dict[str, tuple[str, ...]] = {
    "unip_hub.runtime.dispatch": ("PRECISIONS", "RUNTIMES", "Runtime", "check_choice", "load_runtime"),
    "unip_hub.runtime.sessions": ("OrtRuntime", "RuntimeInfo", "TorchRuntime"),
    "unip_hub.runtime.shaped": ("ShapedRuntime",),
    "unip_hub.runtime.agreement": ("AccuracyError", "DEFAULT_MIN_AGREEMENT", "compare_outputs"),
    "unip_hub.runtime.calibration": ("CalibrationSet", "calibration_set", "synthetic_calibration"),
    "unip_hub.runtime.cache": ("weights_sha256",),
    "unip_hub.runtime.op_profile": ("OpTime", "format_ops", "op_profile"),
}

__all__ = sorted(name for names in _EXPORTS.values() for name in names)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
