"""Deployment runtimes behind one switch: torch eager (fp32, bf16/fp16 autocast) and ONNX Runtime (fp32, int8).

>>> from unip_hub.runtime import load_runtime
>>> run = load_runtime(seg, runtime="onnxruntime", precision="int8")   # exported + quantised once, cached
>>> logits = run(x)                                                      # (B, C_in, H, W) -> (B, K, H, W)

- :mod:`~unip_hub.runtime.load`: :func:`load_runtime` (the switch), the cache lookups.
- :mod:`~unip_hub.runtime.sessions`: the callables (:class:`TorchRuntime`, :class:`OrtRuntime`).
- :mod:`~unip_hub.runtime.build`: the fp32 export and the int8 recipe (static convs, dynamic matmuls).
- :mod:`~unip_hub.runtime.calibration`: calibration frames (files or synthetic scenes).
- :mod:`~unip_hub.runtime.accuracy`: agreement with fp32 torch (logits, masks, mIoU) and the refusal.
- :mod:`~unip_hub.runtime.cache`: cache folder and keys (sha256 of the weights and of the recipe).

Names load their module on first use, so importing the package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRECISIONS": "load",
    "RUNTIMES": "load",
    "Runtime": "load",
    "check_choice": "load",
    "load_runtime": "load",
    "OrtRuntime": "sessions",
    "RuntimeInfo": "sessions",
    "TorchRuntime": "sessions",
    "AccuracyError": "accuracy",
    "DEFAULT_MIN_AGREEMENT": "accuracy",
    "compare_outputs": "accuracy",
    "CalibrationSet": "calibration",
    "calibration_set": "calibration",
    "synthetic_calibration": "calibration",
    "weights_sha256": "cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
