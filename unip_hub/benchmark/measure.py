"""Measuring tools of the benchmark suite: FLOPs, matmul peak, interleaved timing, peak memory.

Every figure is measured so it can be compared within one run on a noisy machine:

- FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` over one eager call (matmuls, convolutions and attention;
  the CPU flash-attention kernel and the in-place ``addmm_`` are added to its table here). Compiled variants are
  counted on their eager function: a compiled graph's own kernels are invisible to the counter.
- Peak: a large square ``torch.mm`` of the benchmark dtype, timed **in every round** between the measured calls,
  so the fraction of peak of round r divides by the peak of round r (the load of the other processes cancels).
- Latency: median over rounds after warm-up; the variants of a case are interleaved and their order rotates.
- Peak memory: CUDA ``max_memory_allocated`` minus the memory held before the call; on CPU the allocations and
  frees seen by the PyTorch profiler (``profile_memory=True``) during one call, replayed in time order (frees of
  blocks allocated before the call are ignored) -- the largest amount of tensor memory the call held at once
  beyond what it started with. BLAS / oneDNN scratch buffers outside PyTorch's allocator are not included.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def synchronize(device: torch.device | str) -> None:
    """Waits for queued kernels of ``device`` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------------------- FLOPs
def _sdpa_cpu_flops(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, out_val: Any = None,
                    **kwargs: Any) -> int:
    # (B, H, Nq, D) x (B, H, Nk, D) -> q k^T and attn @ v: two batched matmuls
    b, h, nq, d = query.shape
    nk, dv = key.shape[-2], value.shape[-1]
    return 2 * b * h * nq * nk * (d + dv)


def _sdpa_cpu_backward_flops(grad_out: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    # dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q: four batched matmuls
    return 2 * _sdpa_cpu_flops(query, key, value)


def _addmm_inplace_flops(*args: Any, **kwargs: Any) -> int:
    # x.addmm_(a, b) (Block's residual adds) counted by PyTorch's own addmm formula, which takes the raw arguments
    from torch.utils.flop_counter import flop_registry

    return flop_registry[torch.ops.aten.addmm](*args, **kwargs)


for _f in (_sdpa_cpu_flops, _sdpa_cpu_backward_flops, _addmm_inplace_flops):
    _f._get_raw = True  # type: ignore[attr-defined]  # called with tensors, not shapes


def _extra_flop_formulas() -> dict:
    aten = torch.ops.aten
    extra = {aten.addmm_: _addmm_inplace_flops}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        extra[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flops
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        extra[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _sdpa_cpu_backward_flops
    return extra


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of one call of ``fn`` (a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas()) as counter:
        fn()
    return int(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------------- matmul peak
class MatmulPeak:
    """A ``size`` x ``size`` matmul of ``dtype`` on ``device``, timed on demand (GFLOP/s).

    Args:
        device: Where to run.
        dtype: The benchmark's dtype (the peak of bf16 matmuls for a bf16 run).
        size: Side of the square matrices (2048: 17 GFLOP per product).
    """

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, size: int = 2048
                 ) -> None:
        gen = torch.Generator().manual_seed(0)
        self.a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
        self.b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
        self.device = torch.device(device)
        self.flops = 2 * size**3
        self.measure(reps=1)  # warm-up: thread pools, BLAS buffers

    def measure(self, reps: int = 2) -> float:
        """GFLOP/s of the fastest of ``reps`` products (the peak this machine gives right now)."""
        best = float("inf")
        for _ in range(reps):
            synchronize(self.device)
            t0 = time.perf_counter()
            torch.mm(self.a, self.b)
            synchronize(self.device)
            best = min(best, time.perf_counter() - t0)
        return self.flops / best / 1e9


# --------------------------------------------------------------------------------------------------------- timing
@dataclass
class Timings:
    """Seconds per call of each variant, and the matmul peak (GFLOP/s), per round."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    peak_gflops: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, baseline: str, name: str) -> float:
        """Speed of ``name`` relative to ``baseline`` (> 1: ``name`` is faster): median of per-round ratios."""
        return statistics.median(b / o for b, o in zip(self.seconds[baseline], self.seconds[name]))

    def fraction_of_peak(self, name: str, flops: int) -> float:
        """Achieved GFLOP/s of ``name`` over the peak measured in the same round; median over rounds."""
        return statistics.median(flops / s / 1e9 / p for s, p in zip(self.seconds[name], self.peak_gflops))


def time_interleaved(
    variants: dict[str, Callable[[], Any]],
    device: torch.device | str = "cpu",
    rounds: int = 5,
    warmup: int = 1,
    peak: MatmulPeak | None = None,
    settle: float = 0.0,
) -> Timings:
    """Times every variant once per round, interleaved in a rotating order, after ``warmup`` untimed rounds.

    Args:
        variants: Name -> zero-argument callable doing one measured call.
        device: Device to synchronise before and after each call.
        rounds: Timed rounds (the median is reported).
        warmup: Untimed rounds first (lazy initialisation, allocator warm-up, compilation).
        peak: If given, the matmul peak is measured at the start of every timed round.
        settle: Seconds to wait before each timed call and each peak measurement, so that the thread pool of the
            call before is idle: ONNX Runtime's workers spin for 5-20 ms after a run, and a torch call started in
            that time ran 11 % slower here (284 vs 256 ms, ViT-S 224 batch 8), which the rotating order then
            charged to whichever variant follows an ONNX Runtime one.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(variants)
    out = Timings(seconds={n: [] for n in names})
    for _ in range(warmup):
        for n in names:
            variants[n]()
    for r in range(rounds):
        if peak is not None:
            time.sleep(settle)
            out.peak_gflops.append(peak.measure())
        for n in names[r % len(names):] + names[: r % len(names)]:
            synchronize(device)
            time.sleep(settle)
            t0 = time.perf_counter()
            variants[n]()
            synchronize(device)
            out.seconds[n].append(time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------------------------------------- memory
def _allocations(prof: Any) -> list[tuple[int, int, int]]:
    """(time, pointer, signed size) of every CPU allocation and free the profiler recorded."""
    out, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        fields = node.extra_fields
        if type(fields).__name__.endswith("Allocation") and str(fields.device).startswith("cpu"):
            out.append((node.start_time_ns, fields.ptr, fields.alloc_size))
    return sorted(out)


def _cpu_peak_bytes(fn: Callable[[], Any]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live: dict[int, int] = {}  # blocks allocated during the call; frees of older blocks are not ours to count
    current = highest = 0
    for _, ptr, size in _allocations(prof):
        if size > 0:
            live[ptr] = size
            current += size
            highest = max(highest, current)
        elif ptr in live:
            current -= live.pop(ptr)
    return highest


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int:
    """Largest amount of tensor memory allocated at once by one call of ``fn`` beyond what was held before it."""
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    if device.type != "cpu":
        raise ValueError(f"peak memory is measured on 'cpu' or 'cuda', not {device.type!r}")
    return _cpu_peak_bytes(fn)
