"""Benchmarks of the UNIP models against same-run baselines (``unip benchmark``): speed ratios, fraction of the
machine's matmul peak, throughput, latency, peak memory.

- :mod:`~unip_hub.benchmark.config`: what to measure (:class:`BenchConfig`); no torch import.
- :mod:`~unip_hub.benchmark.cases`: the workloads and their variants (ours, baselines, runtimes).
- :mod:`~unip_hub.benchmark.baselines`: timm's ViT and the research-style eager code on our weights.
- :mod:`~unip_hub.benchmark.measure`: FLOPs, matmul peak, interleaved timing, peak memory.
- :mod:`~unip_hub.benchmark.video`: the ``video`` group (``unip segment`` end-to-end vs model-only frames/s).
- :mod:`~unip_hub.benchmark.suite`: the run (cases -> figures -> JSON); :mod:`~unip_hub.benchmark.report`: tables.

The names below load their module on first use (PEP 562), so importing the package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchConfig": "config",
    "MatmulPeak": "measure",
    "count_flops": "measure",
    "peak_memory_bytes": "measure",
    "time_interleaved": "measure",
    "load_baselines": "suite",
    "run_benchmark": "suite",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
