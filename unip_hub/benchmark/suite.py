"""The benchmark run behind ``unip benchmark``: cases -> measurements -> table + JSON.

The ``video`` group (end-to-end ``unip segment`` frames/s vs model-only, :mod:`unip_hub.benchmark.video`) is
measured whole by its own module and reported in the same table.

Per case and variant: parameters, GFLOPs (FlopCounterMode), achieved GFLOP/s and its fraction of the matmul peak
measured in the same rounds, throughput (images/s), latency (median of the timed rounds after warm-up) and peak
memory; per baseline, the speed of ``ours`` relative to it (median of per-round latency ratios) and the agreement
of the outputs. See :mod:`unip_hub.benchmark.measure` for how each figure is taken.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from unip_hub.benchmark.cases import Case, Settings, backbone_case, distill_case, segmenter_case
from unip_hub.benchmark.config import ARCHS, GROUPS, BenchConfig
from unip_hub.benchmark.measure import DTYPES, MatmulPeak, Timings, count_flops, peak_memory_bytes, time_interleaved
from unip_hub.utils.atomic import write_text_atomic

__all__ = ["ARCHS", "GROUPS", "BenchConfig", "build_cases", "load_baselines", "measure_case", "run_benchmark"]

# pause before each timed call of a case with ONNX Runtime variants (on the CPU): its workers spin after a run
ORT_SETTLE_S = 0.03

# tiny stand-ins for --quick (seconds on a laptop): same code paths, toy widths
_TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}
_TINY_TEACHER = {"embed_dim": 64, "depth": 3, "num_heads": 4}


def load_baselines(path: str | os.PathLike | None = None) -> ModuleType:
    """The baselines module: :mod:`unip_hub.benchmark.baselines`, or the Python file ``path`` (same functions)."""
    if path is None:
        from unip_hub.benchmark import baselines

        return baselines
    import importlib.util

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"baselines file {path} not found; give a Python file with the functions of "
                                "unip_hub.benchmark.baselines, or leave --baselines out")
    spec = importlib.util.spec_from_file_location("unip_benchmark_baselines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _backbone_cases(cfg: BenchConfig, s: Settings, baselines: ModuleType) -> Iterable[Case]:
    if cfg.quick:  # toy sizes: 32/64 px
        for size in (32, 64):
            yield backbone_case("unip_vit_tiny", size, 2, s, baselines, **_TINY)
        return
    for arch in cfg.archs:
        for size, batch in ((224, cfg.batch_224), (512, cfg.batch_512)):
            yield backbone_case(arch, size, batch, s, baselines)


def _segmenter_cases(cfg: BenchConfig, s: Settings, baselines: ModuleType) -> Iterable[Case]:
    if cfg.quick:  # a 64 px window sliding over 48 x 80
        for mode in cfg.modes:
            yield segmenter_case("unip_vit_tiny", mode, (48, 80), 1, s, baselines, crop=64, stride=43,
                                 num_classes=5, **_TINY)
        return
    for arch in cfg.archs:
        for hw in cfg.segmenter_sizes:
            for mode in cfg.modes:
                yield segmenter_case(arch, mode, hw, cfg.batch_512, s, baselines)


def _distill_cases(cfg: BenchConfig, s: Settings, baselines: ModuleType) -> Iterable[Case]:
    if cfg.quick:
        yield distill_case(2, s, baselines, "unip_vit_tiny", "unip_vit_tiny", 2, 32, _TINY, _TINY_TEACHER)
    else:
        yield distill_case(cfg.batch_224, s, baselines)


def _detection_cases(cfg: BenchConfig, s: Settings, baselines: ModuleType) -> Iterable[Case]:
    from unip_hub.benchmark.detection import detection_cases  # torchvision's detectors (unip_hub.benchmark.detection)

    yield from detection_cases(cfg, s)


_GROUP_CASES = {"backbone": _backbone_cases, "segmenter": _segmenter_cases, "distill": _distill_cases,
                "detection": _detection_cases}


def build_cases(cfg: BenchConfig, baselines: ModuleType) -> Iterable[Case]:
    """The cases of ``cfg``, built lazily one at a time (so only one set of models is in memory)."""
    from unip_hub.benchmark.runtimes import runtime_pairs

    s = Settings(cfg.device, DTYPES[cfg.dtype], cfg.compile, cfg.quick, cfg.max_autotune,
                 tuple(runtime_pairs(cfg.runtimes, cfg.precisions, cfg.device)), "onnxruntime" in cfg.runtimes,
                 cfg.cache_dir, cfg.cuda_graphs)
    for group in GROUPS:
        if group in cfg.groups and group in _GROUP_CASES:  # video: measured whole by _video_results
            yield from _GROUP_CASES[group](cfg, s, baselines)


def _flops(case: Case) -> dict[str, int]:
    """FLOPs per variant, counted on the eager call; runtime variants take ours (the same computation)."""
    flops = {n: count_flops(getattr(fn, "eager", fn)) for n, fn in case.variants.items()
             if not hasattr(fn, "flops_as")}
    return flops | {n: flops[fn.flops_as] for n, fn in case.variants.items() if hasattr(fn, "flops_as")}


def _variant_figures(case: Case, name: str, flops: int, timings: Timings, cfg: BenchConfig) -> dict[str, Any]:
    fn = case.variants[name]
    latency = timings.median(name)
    measure_memory = cfg.memory and getattr(fn, "torch_memory", True)
    figures = {
        "gflops": flops / 1e9,
        "achieved_gflops_per_s": flops / latency / 1e9,
        "fraction_of_peak": timings.fraction_of_peak(name, flops),
        "latency_ms": latency * 1e3,
        "throughput_img_per_s": case.batch / latency,
        "peak_memory_mb": peak_memory_bytes(fn, cfg.device) / 2**20 if measure_memory else None,
        "latencies_ms": [t * 1e3 for t in timings.seconds[name]],
    }
    if "timm" in case.variants and name != "timm":
        figures["speedup_vs_timm"] = timings.ratio("timm", name)
    return figures


def _ort_profiles(case: Case, cfg: BenchConfig) -> dict[str, list[dict[str, Any]]]:
    """Kernel time per operator type of every ONNX Runtime variant's graph, on the input its session gets (a
    separate profiled session, after the timed rounds)."""
    from unip_hub.runtime.op_profile import op_profile

    out = {}
    for name, (runtime, x) in case.ort_sessions.items():
        session = runtime.session_for((x.shape[0], x.shape[2], x.shape[3]))  # OrtRuntime or ShapedRuntime
        out[name] = [o.as_dict() for o in op_profile(session.info.path, x, runs=1 if cfg.quick else cfg.rounds)]
    return out


def measure_case(case: Case, cfg: BenchConfig, peak: MatmulPeak) -> dict[str, Any]:
    """All figures of one case (see the module docstring)."""
    checks = case.check() if case.check is not None else {}
    flops = _flops(case)
    settle = ORT_SETTLE_S if case.ort_sessions and torch.device(cfg.device).type == "cpu" else 0.0
    timings = time_interleaved(case.variants, cfg.device, rounds=1 if cfg.quick else cfg.rounds,
                               warmup=0 if cfg.quick else cfg.warmup, peak=peak, settle=settle)
    variants = {n: _variant_figures(case, n, flops[n], timings, cfg) for n in case.variants}
    ours_mb = variants["ours"]["peak_memory_mb"]
    for n, v in variants.items():
        if n != "ours":
            v["ours_speedup"] = timings.ratio(n, "ours")
            if ours_mb and v["peak_memory_mb"]:
                v["ours_memory_ratio"] = ours_mb / v["peak_memory_mb"]
    if cfg.ort_profile:
        for name, ops in _ort_profiles(case, cfg).items():
            variants[name]["ort_ops"] = ops
    return {"name": case.name, "group": case.group, "batch": case.batch, "params_m": case.params / 1e6,
            "meta": case.meta, "checks": checks, "peak_gflops_per_s": timings.peak_gflops, "variants": variants}


def machine_info(cfg: BenchConfig) -> dict[str, Any]:
    """Where the figures were measured: CPU model, cores, threads, load, versions, GPU name."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__,
                            "platform": platform.platform(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "device": cfg.device, "dtype": cfg.dtype,
                            "compile": cfg.compile, "max_autotune": cfg.max_autotune, "cuda_graphs": cfg.cuda_graphs}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu_model"] = platform.processor()
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = list(os.getloadavg())
    if torch.device(cfg.device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(cfg.device)
    return info


def _accuracy(cfg: BenchConfig) -> dict[str, Any] | None:
    """The runtime accuracy section (``cfg.accuracy_model``), or ``None``."""
    if cfg.accuracy_model is None:
        return None
    from unip_hub.benchmark.accuracy import runtime_accuracy
    from unip_hub.benchmark.runtimes import runtime_pairs

    pairs = runtime_pairs(cfg.runtimes, cfg.precisions, cfg.device)
    return runtime_accuracy(cfg.accuracy_model, pairs, cfg.accuracy_data, cfg.cache_dir, modes=cfg.modes)


def _video_results(cfg: BenchConfig, progress: bool) -> list[dict[str, Any]]:
    """The video group (:mod:`unip_hub.benchmark.video`): one result, or none when the group is not asked for."""
    if "video" not in cfg.groups:
        return []
    from unip_hub.benchmark.video import video_result

    if progress:
        print(f"measuring video/{cfg.video_arch} ...", file=sys.stderr, flush=True)
    return [video_result(cfg)]


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Writes ``obj`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(json.dumps(obj, indent=2), path)


def run_benchmark(cfg: BenchConfig, out: str | os.PathLike | None = None, progress: bool = True,
                  markdown: bool = False) -> dict[str, Any]:
    """Runs the suite of ``cfg``; prints a table (with ``progress``; also in Markdown with ``markdown``) and writes
    the JSON atomically to ``out`` when given."""
    from unip_hub.benchmark.report import format_markdown, format_table

    cfg.validate()
    baselines = load_baselines(cfg.baselines)
    info = machine_info(cfg)
    peak = MatmulPeak(cfg.device, DTYPES[cfg.dtype], size=256 if cfg.quick else 2048)
    results = []
    for case in build_cases(cfg, baselines):
        if progress:
            print(f"measuring {case.name} ...", file=sys.stderr, flush=True)
        results.append(measure_case(case, cfg, peak))
        if progress:  # each case's rows as soon as they exist (a long run shows its figures as it goes)
            from unip_hub.benchmark.report import table_rows

            for row in table_rows({"results": results[-1:]}):
                print("  " + " | ".join(row), file=sys.stderr, flush=True)
        del case
    results += _video_results(cfg, progress)
    if "geo" in cfg.groups:  # rasters segmented in processes of their own (unip_hub.benchmark.geo)
        from unip_hub.benchmark.geo import geo_results

        results += geo_results(cfg, progress)
    accuracy = _accuracy(cfg)
    if hasattr(os, "getloadavg"):
        info["load_average_end"] = list(os.getloadavg())
    peaks = [p for r in results for p in r["peak_gflops_per_s"]]
    report = {"machine": info, "config": {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in vars(cfg).items()},
              "matmul_peak_gflops_per_s": sorted(peaks)[len(peaks) // 2] if peaks else None,
              "baselines": baselines.__name__, "results": results, "accuracy": accuracy}
    if progress:
        print(format_table(report))
    if markdown:
        print(format_markdown(report))
    if out is not None:
        write_json_atomic(report, out)
        if progress:
            print(f"wrote {out}")
    return report
