"""What ``unip benchmark`` measures and how: the groups, the sizes and :class:`BenchConfig`.

Light on purpose (no torch at import): the command line takes its choices from here, so ``unip --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from unip_hub.constants import PRECISIONS, RUNTIMES, VIT_SIZES

GROUPS = ("backbone", "segmenter", "distill", "video", "geo", "detection")  # geo, detection: on request
DEFAULT_GROUPS = ("backbone", "segmenter", "distill")  # video: on request (needs PyAV)
ARCHS = tuple(VIT_SIZES)
DTYPE_NAMES = ("fp32", "bf16", "fp16")
SEGMENTER_SIZES = ((512, 512), (480, 640))
MODES = ("whole", "slide")


@dataclass
class BenchConfig:
    """What to measure and how (defaults: the full CPU suite of the README).

    Attributes:
        groups: Subset of ``backbone``, ``segmenter``, ``distill``, ``video`` (default: all but ``video``).
        archs: Backbone sizes for the backbone and segmenter cases.
        device: ``cpu`` or ``cuda``.
        dtype: ``fp32``, ``bf16`` or ``fp16`` (autocast; fp16 needs CUDA).
        compile: ``torch.compile`` every inference variant (ours and baselines alike), weights frozen.
        max_autotune: With ``compile``, also autotune the matmul kernels.
        cuda_graphs: With ``compile`` on a GPU, replay the compiled calls as CUDA graphs (fixed shapes).
        rounds: Timed rounds per case; medians are reported.
        warmup: Untimed rounds first.
        batch_224: Batch of the backbone cases at 224 (and of the distillation step).
        batch_512: Batch of the backbone cases at 512 and of the segmenter cases.
        quick: Tiny models, one round, no warm-up: checks that everything runs (the figures mean nothing).
        baselines: Path of a baselines module to use instead of :mod:`unip_hub.benchmark.baselines`.
        memory: Measure peak memory (one extra profiled call per variant).
        runtimes: ``torch`` and/or ``onnxruntime``; every existing (runtime, precision) pair besides torch fp32
            (= ``ours``) becomes a variant, and ``onnxruntime`` adds timm under ONNX Runtime (``timm-ort``).
        precisions: ``fp32``, ``int8`` (onnxruntime), ``bf16``, ``fp16`` (torch; fp16 on a GPU only).
        cache_dir: Folder of the built ONNX graphs (default ``~/.cache/unip/runtime``).
        segmenter_sizes: (H, W) of the segmenter cases.
        modes: ``whole`` and/or ``slide`` for the segmenter cases.
        accuracy_model: A trained segmenter checkpoint: also measure every runtime path's accuracy against fp32
            torch on a labelled test set (:mod:`unip_hub.benchmark.accuracy`).
        accuracy_data: That test set (``images/`` + ``labels/``); default: synthetic scenes.
        video_arch: Segmenter backbone of the video group (random weights).
        video_frames: Frames of the video group's synthetic 16-bit sequence.
        video_size: Its (H, W) (default 512 x 640).
        video_batch: Frames per model call in the video group.
        video_repeats: End-to-end runs of the video group (model-only runs before, between and after them).
        ort_profile: After each case's timed rounds, profile every ONNX Runtime variant's graph (kernel time per
            operator type, :mod:`unip_hub.runtime.op_profile`) on a separate session; needs ``onnxruntime``.
    """

    groups: Sequence[str] = DEFAULT_GROUPS
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
    runtimes: Sequence[str] = ("torch",)
    precisions: Sequence[str] = ("fp32",)
    cache_dir: str | None = None
    segmenter_sizes: Sequence[tuple[int, int]] = SEGMENTER_SIZES
    cuda_graphs: bool = False
    modes: Sequence[str] = MODES
    accuracy_model: str | None = None
    accuracy_data: str | None = None
    video_arch: str = "unip_vit_tiny"
    video_frames: int = 32
    video_size: tuple[int, int] = (512, 640)
    video_batch: int = 4
    video_repeats: int = 4
    ort_profile: bool = False

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
        if self.cuda_graphs and not (self.compile and dev.type == "cuda"):
            raise ValueError("CUDA graphs replay compiled GPU calls: pass --device cuda --compile --cuda-graphs")
        _choose("runtimes", self.runtimes, RUNTIMES)
        _choose("precisions", self.precisions, PRECISIONS)
        _choose("segmenter modes", self.modes, MODES)
        if self.ort_profile and "onnxruntime" not in self.runtimes:
            raise ValueError("--ort-profile profiles the ONNX Runtime variants: pass --runtime onnxruntime too")
        if "onnxruntime" in self.runtimes:
            import importlib.util

            if importlib.util.find_spec("onnxruntime") is None:
                raise ValueError("--runtime onnxruntime needs onnxruntime: pip install 'unip[export]'")
        if min(self.rounds, self.batch_224, self.batch_512) < 1 or self.warmup < 0:
            raise ValueError("rounds and batches must be >= 1 and warmup >= 0")
        if "video" in self.groups:
            self._validate_video()

    def _validate_video(self) -> None:
        import importlib.util

        _choose("video architectures", (self.video_arch,), ARCHS)
        if importlib.util.find_spec("av") is None:
            raise ValueError("the video benchmark writes an H.264 overlay with PyAV: pip install 'unip[thermal]'")
        if min(self.video_frames, self.video_batch, self.video_repeats, *self.video_size) < 1:
            raise ValueError("video frames, batch, repeats and size must be >= 1")


def _choose(what: str, given: Sequence[str], allowed: Sequence[str]) -> None:
    bad = [g for g in given if g not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {bad}; choose from {tuple(allowed)}")
