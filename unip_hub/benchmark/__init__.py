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

from unip_hub.utils.lazy import lazy_attributes

_EXPORTS: dict[str, tuple[str, ...]] = {
    "unip_hub.benchmark.config": ("BenchConfig",),
    "unip_hub.benchmark.measure": ("MatmulPeak", "count_flops", "peak_memory_bytes", "time_interleaved"),
    "unip_hub.benchmark.suite": ("load_baselines", "run_benchmark"),
}

__all__ = sorted(name for names in _EXPORTS.values() for name in names)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
