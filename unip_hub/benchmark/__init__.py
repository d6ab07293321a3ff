"""Benchmarks of the UNIP models against same-run baselines (``unip benchmark``): speed ratios, fraction of the
machine's matmul peak, throughput, latency, peak memory. Imported lazily by the CLI; nothing heavy at import."""

from unip_hub.benchmark.measure import MatmulPeak, count_flops, peak_memory_bytes, time_interleaved
from unip_hub.benchmark.suite import BenchConfig, load_baselines, run_benchmark

__all__ = ["BenchConfig", "MatmulPeak", "count_flops", "load_baselines", "peak_memory_bytes", "run_benchmark",
           "time_interleaved"]
