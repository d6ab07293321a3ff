"""The benchmark cases: a backbone forward, a segmenter (whole / slide) forward, one NMI-HAD training step.

A :class:`Case` holds zero-argument callables, one per variant, all on the same weights and inputs: ``ours`` (the
package's code path with its fast paths), the baselines (``timm``, ``research``) of
:mod:`unip_hub.benchmark.baselines`, passed in as ``baselines``, and the runtime variants (``ort-fp32``,
``ort-int8``, ``timm-ort``, ...: :mod:`unip_hub.benchmark.runtimes`). ``check`` compares the outputs with ours.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from torch import nn

from unip_hub.benchmark.runtimes import TokensOf, runtime_fns, timm_ort_fn
from unip_hub.constants import SLIDE_CROP, SLIDE_STRIDE
from unip_hub.models.slide import slide_logits, window_boxes

TensorFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Case:
    """One measured workload.

    Attributes:
        name: e.g. ``backbone/unip_vit_small@224``.
        group: ``backbone``, ``segmenter`` or ``distill``.
        batch: Images per call.
        params: Parameters of the model(s) involved.
        variants: Variant name -> callable doing one call; ``ours`` first.
        check: Returns agreement figures of the baselines with ``ours`` (max abs difference, mask agreement...).
        meta: Settings worth recording (sizes, modes, layers).
        ort_sessions: ONNX Runtime variant name -> (its runtime object, the input its session is called with: the
            image batch, or one group of slide windows), for ``--ort-profile``.
    """

    name: str
    group: str
    batch: int
    params: int
    variants: dict[str, Callable[[], Any]]
    check: Callable[[], dict[str, float]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    ort_sessions: dict[str, tuple[Any, torch.Tensor]] = field(default_factory=dict)


def _ort_sessions(runtime: dict[str, Any], x: torch.Tensor) -> dict[str, tuple[Any, torch.Tensor]]:
    """The ONNX Runtime entries of ``runtime`` (they carry ``info.runtime == "onnxruntime"``), each with ``x``."""
    return {name: (fn, x) for name, fn in runtime.items()
            if getattr(getattr(fn, "info", None), "runtime", None) == "onnxruntime"}


@dataclass(frozen=True)
class Settings:
    """How the cases run: device, dtype (``torch.autocast`` for bf16/fp16), ``torch.compile``, and tiny models.

    ``compile`` compiles every torch inference variant with :func:`unip_hub.inference.compile_for_inference`
    (weights frozen into the graph), ``max_autotune`` with autotuned matmuls too. ``runtime_pairs`` are the
    (runtime, precision) variants besides ours (:mod:`unip_hub.benchmark.runtimes`); ``onnxruntime`` adds timm
    under ONNX Runtime; ``cache_dir`` holds their built graphs.
    """

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    compile: bool = False
    quick: bool = False
    max_autotune: bool = False
    runtime_pairs: tuple[tuple[str, str], ...] = ()
    onnxruntime: bool = False
    cache_dir: str | None = None
    cuda_graphs: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.dtype)


def _params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _inference(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, settings: Settings, ours: bool) -> Callable[[], Any]:
    """One eval call: ours under ``torch.inference_mode`` (our fast path), baselines under ``no_grad`` as they run.

    With ``settings.compile`` the call runs the compiled ``fn``; its ``eager`` attribute is the same call uncompiled
    (FLOPs are counted on it).
    """
    grad_off = torch.inference_mode if ours else torch.no_grad

    def make(f: Callable[[torch.Tensor], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with grad_off(), settings.autocast():
                return f(x)

        return call

    if not settings.compile:
        return make(fn)
    from unip_hub.inference.compile import compile_for_inference

    call = make(compile_for_inference(fn, max_autotune=settings.max_autotune, cuda_graphs=settings.cuda_graphs))
    call.eager = make(fn)  # type: ignore[attr-defined]
    return call


def _runtime_call(fn: TensorFn, x: torch.Tensor) -> Callable[[], Any]:
    """A runtime variant's call: no autocast, no compile; FLOPs are those of ``ours`` (the same computation), peak
    memory is not measured (ONNX Runtime allocates outside PyTorch)."""

    def call() -> Any:
        with torch.no_grad():
            return fn(x)

    call.flops_as = "ours"  # type: ignore[attr-defined]
    call.torch_memory = False  # type: ignore[attr-defined]
    return call


def inference_variants(fns: dict[str, TensorFn], x: torch.Tensor, settings: Settings,
                       runtime: dict[str, TensorFn] | None = None) -> dict[str, Callable[[], Any]]:
    """Zero-argument calls of every ``fns`` entry on ``x`` (``ours`` with our fast path, see :func:`_inference`),
    then of every ``runtime`` entry (:func:`_runtime_call`)."""
    calls = {name: _inference(fn, x, settings, ours=name == "ours") for name, fn in fns.items()}
    return calls | {name: _runtime_call(fn, x) for name, fn in (runtime or {}).items()}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def output_check(variants: dict[str, Callable[[], Any]], masks: bool) -> Callable[[], dict[str, float]]:
    """A check comparing every variant's output with ``ours``: max abs difference (and mask agreement)."""

    def check() -> dict[str, float]:
        out = variants["ours"]()
        res = {}
        for name, call in variants.items():
            if name == "ours":
                continue
            ref = call()
            res[f"max_abs_diff_{name}"] = _max_diff(out, ref)
            if masks:  # (B, K, H, W) logits -> fraction of pixels with the same class
                res[f"mask_agreement_{name}"] = float((out.argmax(1) == ref.argmax(1)).float().mean())
        return res

    return check


def _images(batch: int, hw: tuple[int, int], settings: Settings, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *hw, generator=gen).to(settings.device)


# ------------------------------------------------------------------------------------------------------- backbone
def backbone_case(arch: str, size: int, batch: int, settings: Settings, baselines: ModuleType | None,
                  **overrides: Any) -> Case:
    """``forward_features`` of a randomly initialised ``arch`` stored at ``size`` (its position table at that grid)."""
    from unip_hub.models.vit import build_vit

    torch.manual_seed(0)
    model = build_vit(arch, img_size=size, **overrides).eval().to(settings.device)
    x = _images(batch, (size, size), settings)
    fns: dict[str, TensorFn] = {"ours": model.forward_features}
    runtime = runtime_fns(model, settings.runtime_pairs, settings.cache_dir, settings.device,
                          None if settings.quick else (batch, size, size))
    if baselines is not None:
        timm = baselines.timm_vit(model).to(settings.device)
        fns["timm"] = timm.forward_features
        fns["research"] = lambda t: baselines.research_forward_features(model, t)
        if settings.onnxruntime:
            runtime["timm-ort"] = timm_ort_fn(TokensOf(timm), x, settings.cache_dir)
    variants = inference_variants(fns, x, settings, runtime)
    return Case(f"backbone/{arch}@{size}", "backbone", batch, _params(model), variants,
                output_check(variants, masks=False), {"arch": arch, "size": [size, size]}, _ort_sessions(runtime, x))


# ------------------------------------------------------------------------------------------------------ segmenter
def _segmenter_fns(seg: nn.Module, mode: str, crop: int, stride: int, batch_windows: int,
                   baselines: ModuleType | None) -> dict[str, TensorFn]:
    """Ours (whole: ``seg``; slide: batched windows) and the research-style whole / one-window-at-a-time slide."""
    if mode == "whole":
        fns: dict[str, TensorFn] = {"ours": seg}
        if baselines is not None:
            fns["research"] = lambda t: baselines.research_segmenter_whole(seg, t)
        return fns
    fns = {"ours": lambda t: seg.slide_logits(t, crop, stride, batch_windows)}
    if baselines is not None:
        fns["research"] = lambda t: baselines.research_segmenter_slide(seg, t, crop, stride)
    return fns


def segmenter_case(arch: str, mode: str, hw: tuple[int, int], batch: int, settings: Settings,
                   baselines: ModuleType | None, crop: int = SLIDE_CROP, stride: int = SLIDE_STRIDE,
                   batch_windows: int | None = None, num_classes: int = 21, **overrides: Any) -> Case:
    """LL-FPN + UPerNet logits of ``arch`` at ``hw``, ``mode`` ``whole`` or ``slide`` (windows ``crop``/``stride``).

    ``batch_windows`` default: every window in one pass on a GPU, one window per pass on the CPU (measured faster
    there: two stacked 480 x 512 windows run the stride-4 UPerNet convs out of cache).
    """
    from unip_hub.hub.segmenters import create_segmenter

    if mode not in ("whole", "slide"):
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    torch.manual_seed(0)
    seg = create_segmenter(arch, num_classes=num_classes, img_size=crop, aux=False, **overrides)
    seg = seg.eval().to(settings.device)
    if batch_windows is None:
        batch_windows = 8 if torch.device(settings.device).type == "cuda" else 1
    x = _images(batch, hw, settings)
    fns = _segmenter_fns(seg, mode, crop, stride, batch_windows, baselines)
    group = min(batch_windows, len(window_boxes(*hw, crop, stride)))  # a full group of slide windows
    windows = (batch * group, min(crop, hw[0]), min(crop, hw[1]))
    shape = None if settings.quick else (batch, *hw) if mode == "whole" else windows
    whole = runtime_fns(seg, settings.runtime_pairs, settings.cache_dir, settings.device, shape)
    if baselines is not None:
        timm = baselines.timm_segmenter(seg).to(settings.device)
        fns["timm"] = _as_mode(timm, seg.num_classes, mode, crop, stride, batch_windows)
        if settings.onnxruntime:
            shape = x[:, :, :crop, :crop] if mode == "slide" else x  # the windows' shape, or the image's
            whole["timm-ort"] = timm_ort_fn(timm, shape, settings.cache_dir)
    runtime = {name: _as_mode(fn, seg.num_classes, mode, crop, stride, batch_windows) for name, fn in whole.items()}
    session_input = x if mode == "whole" else x[:, :, :windows[1], :windows[2]].repeat(group, 1, 1, 1)
    variants = inference_variants(fns, x, settings, runtime)
    meta = {"arch": arch, "mode": mode, "size": list(hw), "crop": crop, "stride": stride,
            "batch_windows": batch_windows if mode == "slide" else None, "num_classes": num_classes}
    return Case(f"segmenter/{arch}/{mode}@{hw[0]}x{hw[1]}", "segmenter", batch, _params(seg), variants,
                output_check(variants, masks=True), meta, _ort_sessions(whole, session_input))


def _as_mode(fn: TensorFn, num_classes: int, mode: str, crop: int, stride: int, batch_windows: int) -> TensorFn:
    """A whole-image logits call, or the same call run over sliding windows."""
    if mode == "whole":
        return fn
    return lambda t: slide_logits(fn, t, num_classes, crop, stride, batch_windows)


# ----------------------------------------------------------------------------------------------------- distillation
LossFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _training_step(student: nn.Module, loss_fn: LossFn, x: torch.Tensor,
                   settings: Settings) -> tuple[Callable[[], torch.Tensor], nn.Module]:
    """One AdamW step of a copy of ``student`` on ``loss_fn(model, x)``; returns (step, the copy)."""
    model = copy.deepcopy(student)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with settings.autocast():
            loss = loss_fn(model, x)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, model


def _loss_check(variants: dict[str, Callable[[], torch.Tensor]], models: dict[str, nn.Module],
                initial: dict[str, torch.Tensor]) -> Callable[[], dict[str, float]]:
    def check() -> dict[str, float]:
        losses = {}
        for name, step in variants.items():
            models[name].load_state_dict(initial)  # same weights; the optimizer state differs but the loss does not
            losses[name] = step()
        diffs = {f"loss_abs_diff_{n}": float((losses["ours"] - v).abs()) for n, v in losses.items() if n != "ours"}
        return diffs | {"loss": float(losses["ours"])}

    return check


def distill_case(batch: int, settings: Settings, baselines: ModuleType | None, student_arch: str = "unip_vit_small",
                 teacher_arch: str = "unip_vit_base", teacher_layer: int = 9, size: int = 224,
                 student_overrides: dict | None = None, teacher_overrides: dict | None = None) -> Case:
    """One NMI-HAD training step (forward, backward, AdamW step) of a student against teacher layer ``teacher_layer``.

    The student's last block has the teacher's head count. Drop-path is off so every variant computes the same loss.
    """
    from unip_hub.models.vit import build_vit
    from unip_hub.train.distill import NMIHAD

    torch.manual_seed(0)
    teacher = build_vit(teacher_arch, img_size=size, **(teacher_overrides or {})).eval().to(settings.device)
    heads = teacher.blocks[teacher_layer - 1].attn.num_heads
    student = build_vit(student_arch, img_size=size, last_heads=heads, **(student_overrides or {}))
    student = student.train().to(settings.device)
    x = _images(batch, (size, size), settings)
    losses: dict[str, LossFn] = {"ours": lambda m, t: NMIHAD(m, teacher, teacher_layer)(t)}
    if baselines is not None:
        losses["research"] = lambda m, t: baselines.research_distill_loss(m, teacher, t, teacher_layer)
    steps = {name: _training_step(student, fn, x, settings) for name, fn in losses.items()}
    variants = {name: step for name, (step, _) in steps.items()}
    check = _loss_check(variants, {name: model for name, (_, model) in steps.items()},
                        copy.deepcopy(student.state_dict()))
    meta = {"student": student_arch, "teacher": teacher_arch, "teacher_layer": teacher_layer, "last_heads": heads,
            "size": [size, size]}
    name = f"distill/{student_arch}<-{teacher_arch}:L{teacher_layer}@{size}"
    return Case(name, "distill", batch, _params(student, teacher), variants, check, meta)
