"""The benchmark run behind ``unip benchmark`` and ``benchmarks/*.py``: cases -> measurements -> table + JSON.

Per case and variant: parameters, GFLOPs (FlopCounterMode), achieved GFLOP/s and its fraction of the matmul peak
measured in the same rounds, throughput (images/s), latency (median of the timed rounds after warm-up) and peak
memory; per baseline, the speed of ``ours`` relative to it (median of per-round latency ratios) and the agreement
of the outputs. See :mod:`unip_hub.benchmark.measure` for how each figure is taken.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from unip_hub.benchmark.cases import Case, Settings, backbone_case, distill_case, segmenter_case
from unip_hub.benchmark.measure import DTYPES, MatmulPeak, count_flops, peak_memory_bytes, time_interleaved

GROUPS = ("backbone", "segmenter", "distill")
ARCHS = ("unip_vit_tiny", "unip_vit_small", "unip_vit_base", "unip_vit_large")
# tiny stand-ins for --quick (seconds on a laptop): same code paths, toy widths
_TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}
_TINY_TEACHER = {"embed_dim": 64, "depth": 3, "num_heads": 4}


@dataclass
class BenchConfig:
    """What to measure and how (defaults: the full CPU suite of the README).

    Attributes:
        groups: Subset of ``backbone``, ``segmenter``, ``distill``.
        archs: Backbone sizes for the backbone and segmenter cases.
        device: ``cpu`` or ``cuda``.
        dtype: ``fp32``, ``bf16`` or ``fp16`` (autocast; fp16 needs CUDA).
        compile: ``torch.compile`` every inference variant (ours and baselines alike), weights frozen.
        max_autotune: With ``compile``, also autotune the matmul kernels.
        rounds: Timed rounds per case; medians are reported.
        warmup: Untimed rounds first.
        batch_224: Batch of the backbone cases at 224 (and of the distillation step).
        batch_512: Batch of the backbone cases at 512 and of the segmenter cases.
        quick: Tiny models, one round, no warm-up: checks that everything runs (the figures mean nothing).
        baselines: Path of ``baselines.py``; ``None`` = the ``benchmarks/`` folder of the source checkout.
        memory: Measure peak memory (one extra profiled call per variant).
    """

    groups: Sequence[str] = GROUPS
    archs: Sequence[str] = ARCHS
    device: str = "cpu"
    dtype: str = "fp32"
    compile: bool = False
    rounds: int = 5
    warmup: int = 1
    batch_224: int = 8
    batch_512: int = 1
    quick: bool = False
    baselines: str | None = None
    memory: bool = True
    max_autotune: bool = False

    def validate(self) -> None:
        bad = [g for g in self.groups if g not in GROUPS]
        if bad:
            raise ValueError(f"unknown benchmark groups {bad}; choose from {GROUPS}")
        bad = [a for a in self.archs if a not in ARCHS]
        if bad:
            raise ValueError(f"unknown architectures {bad}; choose from {ARCHS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.dtype == "fp16" and dev.type != "cuda":
            raise ValueError("fp16 autocast is a GPU setting; on the CPU use --dtype fp32 or bf16")
        if self.max_autotune and not self.compile:
            raise ValueError("max_autotune applies to compiled variants: pass --compile --max-autotune")
        if min(self.rounds, self.batch_224, self.batch_512) < 1 or self.warmup < 0:
            raise ValueError("rounds and batches must be >= 1 and warmup >= 0")


def load_baselines(path: str | os.PathLike | None = None) -> ModuleType | None:
    """The baselines module (``benchmarks/baselines.py`` of the source checkout), or ``None`` if it is not there."""
    if path is None:
        path = Path(__file__).resolve().parents[2] / "benchmarks" / "baselines.py"
        if not path.is_file():
            return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"baselines file {path} not found (it is benchmarks/baselines.py of the source tree)")
    spec = importlib.util.spec_from_file_location("unip_benchmark_baselines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_cases(cfg: BenchConfig, baselines: ModuleType | None) -> Iterable[Case]:
    """The cases of ``cfg``, built lazily one at a time (so only one set of models is in memory)."""
    s = Settings(cfg.device, DTYPES[cfg.dtype], cfg.compile, cfg.quick, cfg.max_autotune)
    if cfg.quick:  # toy sizes: 32/64 px backbones, a 64 px window sliding over 48 x 80
        if "backbone" in cfg.groups:
            for size in (32, 64):
                yield backbone_case("unip_vit_tiny", size, 2, s, baselines, **_TINY)
        if "segmenter" in cfg.groups:
            for mode in ("whole", "slide"):
                yield segmenter_case("unip_vit_tiny", mode, (48, 80), 1, s, baselines, crop=64, stride=43,
                                     num_classes=5, **_TINY)
        if "distill" in cfg.groups:
            yield distill_case(2, s, baselines, "unip_vit_tiny", "unip_vit_tiny", 2, 32, _TINY, _TINY_TEACHER)
        return
    if "backbone" in cfg.groups:
        for arch in cfg.archs:
            for size, batch in ((224, cfg.batch_224), (512, cfg.batch_512)):
                yield backbone_case(arch, size, batch, s, baselines)
    if "segmenter" in cfg.groups:
        for arch in cfg.archs:
            for hw in ((512, 512), (480, 640)):
                for mode in ("whole", "slide"):
                    yield segmenter_case(arch, mode, hw, cfg.batch_512, s, baselines)
    if "distill" in cfg.groups:
        yield distill_case(cfg.batch_224, s, baselines)


def measure_case(case: Case, cfg: BenchConfig, peak: MatmulPeak) -> dict[str, Any]:
    """All figures of one case (see the module docstring)."""
    checks = case.check() if case.check is not None else {}
    flops = {n: count_flops(getattr(fn, "eager", fn)) for n, fn in case.variants.items()}
    timings = time_interleaved(case.variants, cfg.device, rounds=1 if cfg.quick else cfg.rounds,
                               warmup=0 if cfg.quick else cfg.warmup, peak=peak)
    variants = {}
    for n, fn in case.variants.items():
        latency = timings.median(n)
        variants[n] = {
            "gflops": flops[n] / 1e9,
            "achieved_gflops_per_s": flops[n] / latency / 1e9,
            "fraction_of_peak": timings.fraction_of_peak(n, flops[n]),
            "latency_ms": latency * 1e3,
            "throughput_img_per_s": case.batch / latency,
            "peak_memory_mb": peak_memory_bytes(fn, cfg.device) / 2**20 if cfg.memory else None,
            "latencies_ms": [t * 1e3 for t in timings.seconds[n]],
        }
        if n != "ours":
            variants[n]["ours_speedup"] = timings.ratio(n, "ours")
            if cfg.memory and variants[n]["peak_memory_mb"]:
                variants[n]["ours_memory_ratio"] = variants["ours"]["peak_memory_mb"] / variants[n]["peak_memory_mb"]
    return {"name": case.name, "group": case.group, "batch": case.batch, "params_m": case.params / 1e6,
            "meta": case.meta, "checks": checks, "peak_gflops_per_s": timings.peak_gflops, "variants": variants}


def machine_info(cfg: BenchConfig) -> dict[str, Any]:
    """Where the figures were measured: CPU model, cores, threads, load, versions, GPU name."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__,
                            "platform": platform.platform(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "device": cfg.device, "dtype": cfg.dtype,
                            "compile": cfg.compile, "max_autotune": cfg.max_autotune}
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


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Writes ``obj`` as JSON to a temporary sibling, then renames it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def run_benchmark(cfg: BenchConfig, out: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Runs the suite of ``cfg``; prints a table (with ``progress``) and writes the JSON to ``out`` when given."""
    from unip_hub.benchmark.report import format_table

    cfg.validate()
    baselines = load_baselines(cfg.baselines)
    if baselines is None and progress:
        print("note: benchmarks/baselines.py not found (it ships with the source tree, not the wheel): measuring "
              "ours only; pass --baselines PATH", file=sys.stderr)
    info = machine_info(cfg)
    peak = MatmulPeak(cfg.device, DTYPES[cfg.dtype], size=256 if cfg.quick else 2048)
    results = []
    for case in build_cases(cfg, baselines):
        if progress:
            print(f"measuring {case.name} ...", file=sys.stderr, flush=True)
        results.append(measure_case(case, cfg, peak))
        del case
    if hasattr(os, "getloadavg"):
        info["load_average_end"] = list(os.getloadavg())
    peaks = [p for r in results for p in r["peak_gflops_per_s"]]
    report = {"machine": info, "config": {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in vars(cfg).items()},
              "matmul_peak_gflops_per_s": sorted(peaks)[len(peaks) // 2] if peaks else None,
              "baselines": baselines is not None, "results": results}
    if progress:
        print(format_table(report))
    if out is not None:
        write_json_atomic(report, out)
    return report
