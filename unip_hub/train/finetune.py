"""Fine-tuning UNIP segmenters (LL-FPN + UPerNet, or a linear probe): :func:`finetune` and its building blocks.

The recipe of the paper (reference section 4): AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05, layer-wise lr
decay 0.85, poly decay after a linear warm-up from 1e-6 x lr, batch 8, drop-path 0.1, auxiliary FCN loss 0.4,
512x512 crops, mixed precision, and per-dataset iteration counts (:mod:`unip_hub.data.presets`). Runs are resumable
(``last.pth`` holds model, optimizer, scaler, iteration, config and rng states, written atomically), keep the best
checkpoint by mIoU (``best.pth``), log to CSV and TensorBoard, and scale to several GPUs / nodes under ``torchrun``
(DistributedDataParallel, SyncBatchNorm on GPUs; ``batch_size`` is the global batch). The settings are
:class:`~unip_hub.train.finetune_config.FinetuneConfig`; the step and loop are the shared core (:mod:`.core`).

>>> from unip_hub.train.finetune import FinetuneConfig, finetune
>>> finetune(FinetuneConfig(dataset="soda", data_root="data/SODA", arch="unip_vit_small", weights="mae_large"))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from unip_hub.constants import INPUT_SCALING
from unip_hub.data.presets import DATASETS, PRESETS
from unip_hub.data.scaling import InputScaling
from unip_hub.train import dist as udist
from unip_hub.train.core import LossScaler, StepContext, amp_dtype
from unip_hub.train.engine import SegLoss, SegTrainWrapper
from unip_hub.train.evaluate import evaluate, save_results, summary_line
from unip_hub.train.finetune_config import RESUMABLE_CHANGES, FinetuneConfig, FinetuneResult, config_from_options
from unip_hub.train.finetune_data import build_dataset
from unip_hub.train.optim import param_groups_lrd
from unip_hub.train.run import TrainingRun, resume_state, start_processes

__all__ = ["DATASETS", "PRESETS", "FinetuneConfig", "FinetuneResult", "build_dataset", "build_segmenter",
           "config_from_options", "finetune", "run_finetune", "segmenter_meta"]


# -------------------------------------------------------------------------------------------------- model
def build_segmenter(cfg: FinetuneConfig, class_names: list[str], palette: Any = None) -> nn.Module:
    """The segmenter of a resolved config (pre-trained backbone ``weights`` if given)."""
    from unip_hub.hub.segmenters import create_segmenter

    seg = create_segmenter(cfg.arch, num_classes=len(class_names), head=cfg.head, neck=cfg.neck, weights=cfg.weights,
                           img_size=cfg.crop_size, aux=cfg.head == "upernet" and cfg.aux_weight > 0,
                           drop_path_rate=cfg.drop_path, init_values=cfg.init_values,
                           freeze_backbone=cfg.linear_probe, class_names=class_names,
                           palette=[list(c) for c in palette] if palette else None, **cfg.backbone_kwargs)
    seg.backbone.norm.requires_grad_(False)  # features are taken before the final norm: it gets no gradient
    seg.input_scaling = str(InputScaling.parse(cfg.input_scaling))  # saved in its checkpoints, used by eval/segment
    seg.counts_to_celsius = list(cfg.counts_to_celsius) if cfg.counts_to_celsius else None  # beside the scaling
    return seg


def segmenter_meta(seg: nn.Module) -> dict[str, Any]:
    """The ``meta`` saved beside the weights (what ``load_segmenter`` needs), as plain JSON types."""
    meta = {**seg.config, "num_classes": seg.num_classes, "class_names": seg.class_names, "palette": seg.palette,
            "mean": seg.mean, "std": seg.std, "input_scaling": seg.input_scaling,
            "counts_to_celsius": getattr(seg, "counts_to_celsius", None)}
    return json.loads(json.dumps(meta))


# ---------------------------------------------------------------------------------------------------- run
@dataclass
class SegmentationRun(TrainingRun):
    """A fine-tuning run: the shared run (:class:`~unip_hub.train.run.TrainingRun`) kept best by mIoU."""

    task: ClassVar[str] = "segmentation"
    metric: ClassVar[str] = "mIoU"

    def evaluate(self) -> dict[str, Any]:
        cfg = self.cfg
        return evaluate(self.model, self.eval_ds, cfg.eval_mode, cfg.crop_size, cfg.eval_stride, cfg.scale,
                        num_workers=min(cfg.num_workers, 2), progress=cfg.progress)

    def eval_record(self, result: dict[str, Any]) -> dict[str, Any]:
        return {k: result[k] for k in ("mIoU", "mAcc", "aAcc")}

    def meta(self, iteration: int) -> dict[str, Any]:
        return segmenter_meta(self.model)

    def write_evaluation(self, result: dict[str, Any], iteration: int) -> None:
        save_results(result, self.out / "eval.json", list(self.eval_ds.CLASSES), {"iteration": iteration})

    def summary(self, result: dict[str, Any]) -> str:
        return summary_line(result)


def _build_run(cfg: FinetuneConfig, info: udist.DistInfo, train_ds: Any, test_ds: Any) -> SegmentationRun:
    """Segmenter (on its device), AdamW with layer-wise decay and the loss scaler of a run."""
    device = torch.device(info.device)
    seg = build_segmenter(cfg, list(train_ds.CLASSES), getattr(train_ds, "PALETTE", None)).to(device)
    # fused AdamW: one kernel for all tensors (4-8x faster than the per-tensor loop on CPU)
    optimizer = torch.optim.AdamW(param_groups_lrd(seg, cfg.weight_decay, cfg.layer_decay), lr=cfg.lr,
                                  betas=cfg.betas, fused=device.type in ("cpu", "cuda"))
    scaler = LossScaler(device, amp_dtype(cfg.amp, device), cfg.clip_grad)
    return SegmentationRun(cfg, info, seg, optimizer, scaler, test_ds)


def _context(run: SegmentationRun) -> StepContext:
    """The step context: the training wrapper (SyncBatchNorm and DDP in multi-GPU runs) and the autocast dtype."""
    cfg, info, device = run.cfg, run.info, torch.device(run.info.device)
    wrapper: nn.Module = SegTrainWrapper(run.model)
    if info.distributed and cfg.sync_bn and device.type == "cuda":
        wrapper = nn.SyncBatchNorm.convert_sync_batchnorm(wrapper)
    if info.distributed:
        wrapper = DistributedDataParallel(wrapper, device_ids=[device.index] if device.type == "cuda" else None)
    return StepContext(wrapper, run.optimizer, run.scaler, device, amp_dtype(cfg.amp, device))


def finetune(config: FinetuneConfig, stop_after: int | None = None) -> FinetuneResult:
    """Fine-tunes (or linear-probes) a segmenter; call it in every process of a ``torchrun`` launch.

    Args:
        config: The run settings; presets fill what is left ``None``.
        stop_after: Leave after this iteration, saving ``last.pth`` (time-boxed jobs; resume later).

    Returns:
        Paths and numbers of the run; ``<out_dir>`` holds ``last.pth``, ``best.pth``, ``log.csv``, ``tb/``,
        ``config.json`` and ``eval.json``.
    """
    cfg = config.resolved()
    info = start_processes(cfg)
    resume, state = resume_state(cfg, "segmentation", RESUMABLE_CHANGES,
                                 defaults={"input_scaling": INPUT_SCALING, "counts_to_celsius": None})
    train_ds, test_ds = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    run = _build_run(cfg, info, train_ds, test_ds)
    run.begin(state, resume)
    ctx = _context(run)
    loss = SegLoss(cfg.aux_weight if cfg.head == "upernet" else 0.0)
    history = run.fit(ctx, train_ds, loss, stop_after)
    return FinetuneResult(run.out, run.start + len(history), run.best, run.best_it, run.final, history,
                          run.model.eval())


def run_finetune(options: Any) -> FinetuneResult:
    """``unip finetune``: the run of the given options (see :func:`config_from_options`), then a summary line."""
    try:
        result = finetune(config_from_options(options))
        main_process = udist.is_main_process()
    finally:
        udist.cleanup()
    if main_process:
        print(f"done: {result.iteration} iterations, best mIoU {100 * result.best_mIoU:.2f} at iteration "
              f"{result.best_iteration}; checkpoints in {result.out_dir} (best.pth, last.pth)")
    return result
