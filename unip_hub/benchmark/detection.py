"""The ``detection`` benchmark group: a UNIP Faster R-CNN against torchvision's ``fasterrcnn_resnet50_fpn_v2``.

Both detectors are built with random weights (``weights=None, weights_backbone=None``), the same number of classes
(3, FLIR's person / bike / car) and the same transform sizes (``min_size`` / ``max_size`` = the image's sides, so
neither resizes), and run in eval mode on identical images (0..1, 512 x 640 = a 640 x 512 thermal frame), every
variant under ``torch.inference_mode``, timed interleaved in the same rounds (:mod:`unip_hub.benchmark.measure`).
Everything after the backbones is torchvision's in both (FPN, RPN with 2 convs, RoI heads, post-processing at
``box_score_thresh`` 0.05, 1000 proposals); ours uses torchvision's default two-fc box head.

Runtime variants where they apply (``--runtime`` / ``--precision``): ``torch-bf16`` (ours under CPU/GPU bf16
autocast) with ``torchvision-bf16`` beside it, ``ort-fp32`` (ours exported by
:func:`unip_hub.detection.runtime.export_detector_onnx`, the whole detector in ONNX Runtime) and ``ort-int8`` (that
graph with dynamically quantised int8 MatMuls, :func:`~unip_hub.detection.runtime.quantize_detector_onnx`).
``--compile`` does not apply: torchvision's detectors have data-dependent control flow. The checks give the
detections per variant and, for ours under another runtime, the fraction of ours' detections found again (same
label, boxes within 0.5 px), and the RPN proposals each detector's RoI heads got (random weights: the count after
NMS differs between models).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unip_hub.benchmark.cases import Case, Settings
from unip_hub.benchmark.config import ARCHS, BenchConfig

__all__ = ["DETECTION_ARCH", "DETECTION_SIZE", "detection_case", "detection_cases"]

DETECTION_ARCH = "unip_vit_small"
DETECTION_SIZE = (512, 640)
"""(H, W): a 640 x 512 thermal frame."""
NUM_CLASSES = 3
_QUICK = dict(embed_dim=64, depth=2, num_heads=2)
_QUICK_SIZE = (64, 96)
_QUICK_BUDGET = dict(rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=100)  # both detectors alike


def _call(model: nn.Module, images: list[torch.Tensor], dtype: torch.dtype | None, device: str) -> Callable[[], Any]:
    """One eval call of a detector on ``images`` (under autocast to ``dtype`` unless ``None``)."""

    def call() -> Any:
        cast = torch.autocast(torch.device(device).type, dtype=dtype) if dtype is not None else \
            contextlib.nullcontext()
        with torch.inference_mode(), cast:
            return model(images)

    return call


def _ort_variants(det: nn.Module, images: list[torch.Tensor], precisions: list[str]) -> dict[str, Callable[[], Any]]:
    """``ort-fp32`` / ``ort-int8`` calls of ``det`` (exported once, in a folder removed once the sessions exist)."""
    from unip_hub.detection.runtime import OnnxDetector, export_detector_onnx, quantize_detector_onnx

    folder = Path(tempfile.mkdtemp(prefix="unip-det-bench-"))
    out = {}
    try:
        fp32 = export_detector_onnx(det, folder / "det.onnx", size=tuple(images[0].shape[-2:]), check=False)
        for precision in precisions:
            path = quantize_detector_onnx(fp32, folder / "det-int8.onnx") if precision == "int8" else fp32
            run = OnnxDetector(path)

            def call(run: OnnxDetector = run) -> Any:
                return run(images)

            call.flops_as = "ours"  # type: ignore[attr-defined]  # the same computation
            call.torch_memory = False  # type: ignore[attr-defined]  # ONNX Runtime allocates outside PyTorch
            out[f"ort-{precision}"] = call
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _found_again(ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor], tol: float = 0.5) -> float:
    """Fraction of ``ref``'s detections with a partner of the same label in ``got`` (every box side within ``tol``)."""
    if not len(ref["boxes"]):
        return 1.0
    found = 0
    for box, label in zip(ref["boxes"].float(), ref["labels"], strict=True):
        same = got["labels"] == label
        found += bool(same.any() and ((got["boxes"][same].float() - box).abs().amax(dim=1) <= tol).any())
    return found / len(ref["boxes"])


def _proposals(model: nn.Module, call: Callable[[], Any]) -> tuple[Any, float]:
    """(``call()``, the number of RPN proposals the RoI heads of ``model``'s torchvision detector got per image)."""
    seen: list[int] = []
    heads = getattr(model, "detector", model).roi_heads
    hook = heads.register_forward_pre_hook(lambda _m, args: seen.extend(len(p) for p in args[1]))
    try:
        return call(), sum(seen) / max(len(seen), 1)
    finally:
        hook.remove()


def _check(variants: dict[str, Callable[[], Any]], models: dict[str, nn.Module]) -> Callable[[], dict[str, float]]:
    def check() -> dict[str, float]:
        outs, res = {}, {}
        for name, call in variants.items():
            if name in models:  # the proposals decide the RoI heads' cost: report them for both detectors
                out, res[f"proposals_{name}"] = _proposals(models[name], call)
            else:
                out = call()
            outs[name] = out[0]
        res |= {f"detections_{name}": float(len(o["boxes"])) for name, o in outs.items()}
        for name in outs:
            if name.startswith(("ort-", "torch-")):  # ours under another runtime / precision
                res[f"found_again_{name}"] = _found_again(outs["ours"], outs[name])
        return res

    return check


def detection_case(arch: str, hw: tuple[int, int], batch: int, settings: Settings,
                   pairs: Iterable[tuple[str, str]] = (), detector_kwargs: dict[str, Any] | None = None,
                   **overrides: Any) -> Case:
    """UNIP ``arch`` Faster R-CNN vs torchvision's ResNet-50 FPN v2 Faster R-CNN on ``batch`` images of ``hw``.

    Args:
        arch: UNIP backbone.
        hw: (H, W) of the images; both detectors' transforms keep it (min_size H, max_size W).
        batch: Images per call.
        settings: Device and base dtype (``torch.autocast`` for bf16/fp16) of the suite.
        pairs: (runtime, precision) variants besides fp32 torch: ``("torch", "bf16")``, ``("onnxruntime", "fp32")``,
            ``("onnxruntime", "int8")`` (others do not apply and are skipped).
        detector_kwargs: torchvision detector settings given to both (e.g. smaller proposal budgets).
        **overrides: :class:`~unip_hub.models.vit.UnipViT` options (tiny widths for ``--quick``).
    """
    from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

    from unip_hub.detection.models import create_detector

    torch.manual_seed(0)
    sizes = dict(min_size=min(hw), max_size=max(hw))
    extra = dict(detector_kwargs or {})
    ours = create_detector(arch, num_classes=NUM_CLASSES, **sizes, detector_kwargs=extra, **overrides)
    ours = ours.eval().to(settings.device)
    tv = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=NUM_CLASSES + 1, **sizes, **extra)
    tv = tv.eval().to(settings.device)
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(3, *hw, generator=gen).to(settings.device) for _ in range(batch)]
    base = None if settings.dtype == torch.float32 else settings.dtype
    variants = {"ours": _call(ours, images, base, settings.device),
                "torchvision": _call(tv, images, base, settings.device)}
    pairs = list(pairs)
    if ("torch", "bf16") in pairs:
        variants["torch-bf16"] = _call(ours, images, torch.bfloat16, settings.device)
        variants["torchvision-bf16"] = _call(tv, images, torch.bfloat16, settings.device)
    ort = [p for r, p in pairs if r == "onnxruntime" and p in ("fp32", "int8")]
    if ort and torch.device(settings.device).type == "cpu":
        variants |= _ort_variants(ours, images, ort)
    meta = {"arch": arch, "head": "faster_rcnn", "size": list(hw), "num_classes": NUM_CLASSES,
            "baseline": "torchvision fasterrcnn_resnet50_fpn_v2", "params_torchvision_m":
            sum(p.numel() for p in tv.parameters()) / 1e6}
    params = sum(p.numel() for p in ours.parameters())
    return Case(f"detection/{arch}-faster_rcnn@{hw[0]}x{hw[1]}", "detection", batch, params, variants,
                _check(variants, {"ours": ours, "torchvision": tv}), meta)


def detection_cases(cfg: BenchConfig, settings: Settings) -> Iterable[Case]:
    """The group's cases: UNIP-S at 512 x 640 (or each of ``cfg.archs`` when they were narrowed), batch 1."""
    if cfg.quick:
        yield detection_case("unip_vit_tiny", _QUICK_SIZE, 1, settings, settings.runtime_pairs, _QUICK_BUDGET,
                             **_QUICK)
        return
    archs = (DETECTION_ARCH,) if tuple(cfg.archs) == ARCHS else tuple(cfg.archs)
    for arch in archs:
        yield detection_case(arch, DETECTION_SIZE, cfg.batch_512, settings, settings.runtime_pairs)
