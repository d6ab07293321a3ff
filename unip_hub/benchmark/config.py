"""What ``unip benchmark`` measures and how: the groups, the sizes and :class:`BenchConfig`.

Light on purpose (no torch at import): the command line takes its choices from here, so ``unip --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GROUPS = ("backbone", "segmenter", "distill")
ARCHS = ("unip_vit_tiny", "unip_vit_small", "unip_vit_base", "unip_vit_large")
DTYPE_NAMES = ("fp32", "bf16", "fp16")


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
        baselines: Path of a baselines module to use instead of :mod:`unip_hub.benchmark.baselines`.
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
        """Raises ``ValueError`` naming the first setting that cannot run here."""
        import torch

        _choose("benchmark groups", self.groups, GROUPS)
        _choose("architectures", self.archs, ARCHS)
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {sorted(DTYPE_NAMES)}, got {self.dtype!r}")
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


def _choose(what: str, given: Sequence[str], allowed: Sequence[str]) -> None:
    bad = [g for g in given if g not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {bad}; choose from {tuple(allowed)}")
