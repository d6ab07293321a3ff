# exports: DetectionResult, DetectionLoss, evaluate_detector, evaluate_detector_checkpoint, train_detector
"""Training UNIP detectors on the one training core that segmentation uses (:mod:`unip_hub.train.core`,
:mod:`unip_hub.train.engine`): the same step (AMP, loss scaling, clipping, DDP), the same resumable batch stream,
the same loop with periodic evaluation, the same atomic checkpoints with every rank's rng state, the same
CSV / TensorBoard log. What differs is the model (:func:`~unip_hub.detection.create_detector`), the batches
(lists of images and targets), the loss (the detector's own sum), the schedule (warm-up then x0.1 steps,
:func:`unip_hub.train.lr.multistep_lr`) and the metric (COCO AP, :class:`~unip_hub.detection.DetectionEvaluator`;
the best checkpoint is kept by AP).

Run folder: ``last.pth`` / ``best.pth`` (training states that :func:`~unip_hub.detection.load_detector` also
reads as detectors), ``log.csv``, ``tb/``, ``config.json``, ``eval.json``.

>>> from unip_hub.detection.train import train_detector
>>> from unip_hub.detection.train_config import DetectionConfig
>>> train_detector(DetectionConfig(data="flir", root="data/FLIR_ADAS_1_3", weights="mae_large"))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from unip_hub.detection.train_config import DetectionConfig, detection_dataset
from unip_hub.train import dist as udist
from unip_hub.train.run import TrainingRun

LOG_FIELDS = ("iteration", "kind", "lr", "loss", "loss_classifier", "loss_box_reg", "loss_objectness",
              "loss_rpn_box_reg", "loss_mask", "classification", "bbox_regression", "bbox_ctrness", "sec_per_iter",
              "AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "mask_AP", "mask_AP50")
"""``log.csv`` columns: the losses of every head (two-stage, RetinaNet, FCOS) and the COCO metrics."""


class DetectionLoss:
    """The loss of one batch ``(images, targets)`` (lists) for the shared core: the sum of the detector's losses."""

    def __call__(self, model: nn.Module, batch: tuple[list[torch.Tensor], list[dict]]
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        images, targets = batch
        losses = model(list(images), list(targets))  # {name: scalar}
        loss = sum(losses.values())
        parts = {k: float(v.detach()) for k, v in losses.items()}
        parts["loss"] = float(loss.detach())
        return loss, parts


@dataclass
class DetectionResult:
    """What a detection run produced."""

    out_dir: Path
    iteration: int
    best_AP: float
    best_iteration: int
    final: dict[str, Any] | None  # the last evaluation (COCO metrics)
    history: list[dict[str, float]]  # per-iteration losses of this call
    model: nn.Module | None = None  # the trained detector (last state, eval mode)


def evaluate_detector(model: nn.Module, dataset: Any, batch_size: int = 2, num_workers: int = 0,
                      progress: bool = False, miss_rate_class: str | None = "auto") -> dict[str, Any]:
    """COCO metrics (0..1, :func:`unip_hub.detection.evaluate.coco_evaluate`) of ``model`` on ``dataset`` (a
    :class:`~unip_hub.detection.DetectionDataset`); ``MR-2`` too when it has a ``person`` class.

    In a ``torchrun`` launch every process detects its share of the images; rank 0 gathers the detections,
    evaluates and hands the metrics to every rank. The model's train / eval mode is restored after.
    """
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    from unip_hub.detection.datasets import detection_collate
    from unip_hub.detection.evaluate import DetectionEvaluator

    rank, world = udist.get_rank(), udist.get_world_size()
    device = next(model.parameters()).device
    loader = DataLoader(Subset(dataset, range(rank, len(dataset), world)), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=detection_collate)
    evaluator = DetectionEvaluator(dataset, miss_rate_class)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for images, targets in tqdm(loader, desc="evaluate", unit="batch",
                                        disable=not (progress and rank == 0)):
                found = model([im.as_subclass(torch.Tensor).to(device) for im in images])
                evaluator.update([t["image_id"] for t in targets], found)
    finally:
        model.train(was_training)
    if world > 1:  # every rank's COCO-results entries, to rank 0
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, evaluator.results)
        evaluator.results = [entry for part in parts for entry in part]
    result = evaluator.compute() if rank == 0 else None
    return udist.broadcast_object(result)


@dataclass
class DetectionRun(TrainingRun):
    """A detection run: the shared run (:class:`~unip_hub.train.run.TrainingRun`) kept best by COCO AP."""

    task: ClassVar[str] = "detection"
    metric: ClassVar[str] = "AP"

    def evaluate(self) -> dict[str, Any]:
        cfg = self.cfg
        return evaluate_detector(self.model, self.eval_ds, cfg.eval_batch_size, min(cfg.num_workers, 2),
                                 cfg.progress)

    def eval_record(self, result: dict[str, Any]) -> dict[str, Any]:
        return {k: result[k] for k in ("AP", "AP50") if k in result}

    def meta(self, iteration: int) -> dict[str, Any]:
        from unip_hub.detection.checkpoint import detector_meta

        return detector_meta(self.model, {"iteration": iteration})

    def write_evaluation(self, result: dict[str, Any], iteration: int) -> None:
        from unip_hub.utils.atomic import write_text_atomic

        text = json.dumps({"iteration": iteration, **result}, indent=2, default=float)
        write_text_atomic(text, self.out / "eval.json")

    def summary(self, result: dict[str, Any]) -> str:
        return f"AP {100 * result['AP']:.2f}, AP50 {100 * result['AP50']:.2f}"


def build_detector(cfg: DetectionConfig, class_names: list[str]) -> nn.Module:
    """The detector of a resolved config (pre-trained backbone ``weights`` if given), with the run's input
    scaling and counts calibration attached (saved in its checkpoints, used by ``unip detect``)."""
    from unip_hub.detection.models import create_detector

    return create_detector(cfg.arch, head=cfg.head, num_classes=len(class_names), weights=cfg.weights,
                           class_names=class_names, box_head=cfg.box_head, min_size=cfg.size, max_size=cfg.size,
                           input_scaling=cfg.input_scaling, counts_to_celsius=cfg.counts_to_celsius,
                           detector_kwargs=dict(cfg.detector_kwargs) or None, drop_path_rate=cfg.drop_path,
                           **cfg.model_kwargs)


def _build_run(cfg: DetectionConfig, info: udist.DistInfo, train_ds: Any, val_ds: Any) -> DetectionRun:
    from unip_hub.detection.checkpoint import detector_param_groups
    from unip_hub.train.core import LossScaler, amp_dtype

    device = torch.device(info.device)
    model = build_detector(cfg, list(train_ds.class_names)).to(device)
    groups = detector_param_groups(model, cfg.lr, cfg.weight_decay, cfg.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=device.type in ("cpu", "cuda"))
    scaler = LossScaler(device, amp_dtype(cfg.amp, device), cfg.clip_grad)
    return DetectionRun(cfg, info, model, optimizer, scaler, val_ds)


def train_detector(config: DetectionConfig, stop_after: int | None = None) -> DetectionResult:
    """Trains a detector; call it in every process of a ``torchrun`` launch.

    Args:
        config: The run settings (:class:`~unip_hub.detection.train_config.DetectionConfig`).
        stop_after: Leave after this iteration, saving ``last.pth`` (time-boxed jobs; resume later).
    """
    from torch.nn.parallel import DistributedDataParallel

    from unip_hub.detection.datasets import detection_collate
    from unip_hub.train.core import StepContext, amp_dtype
    from unip_hub.train.finetune_config import RESUMABLE_CHANGES
    from unip_hub.train.lr import multistep_lr
    from unip_hub.train.run import resume_state, start_processes

    train_ds = detection_dataset(config, "train", config.crop_size(), config.scale_range)
    cfg = config.resolved(len(train_ds))
    info = start_processes(cfg)
    resume, state = resume_state(cfg, "detection", RESUMABLE_CHANGES | {"eval_batch_size"})
    run = _build_run(cfg, info, train_ds, detection_dataset(cfg, "val"))
    run.begin(state, resume, LOG_FIELDS)
    device = torch.device(info.device)
    wrapped: nn.Module = run.model
    if info.distributed:
        wrapped = DistributedDataParallel(run.model, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=True)
    ctx = StepContext(wrapped, run.optimizer, run.scaler, device, amp_dtype(cfg.amp, device))
    history = run.fit(ctx, train_ds, DetectionLoss(), stop_after, collate_fn=detection_collate,
                      lr_at=lambda i: multistep_lr(i, cfg.iterations, cfg.lr, cfg.warmup, cfg.lr_steps))
    return DetectionResult(run.out, run.start + len(history), run.best, run.best_it, run.final, history,
                           run.model.eval())


def run_detection_finetune(options: Any) -> DetectionResult:
    """``unip finetune --task detection``: the run of the given options, then a summary line."""
    from unip_hub.detection.train_config import config_from_options

    try:
        result = train_detector(config_from_options(options))
        main_process = udist.is_main_process()
    finally:
        udist.cleanup()
    if main_process:
        print(f"done: {result.iteration} iterations, best AP {100 * result.best_AP:.2f} at iteration "
              f"{result.best_iteration}; checkpoints in {result.out_dir} (best.pth, last.pth)")
    return result


def metrics_table(metrics: dict[str, Any]) -> str:
    """The COCO metrics (0..1) as text lines in percent: the 12 statistics, per-class AP, the mask AP and MR^-2
    when present."""
    from unip_hub.detection.evaluate import COCO_STATS

    def pct(v: float) -> str:
        return f"{100 * v:.2f}" if v >= 0 else "n/a"  # -1: nothing to measure (e.g. no large objects)

    lines = ["  ".join(f"{k} {pct(metrics[k])}" for k in COCO_STATS[:6] if k in metrics),
             "  ".join(f"{k} {pct(metrics[k])}" for k in COCO_STATS[6:] if k in metrics)]
    per_class = {k[3:]: v for k, v in metrics.items() if k.startswith("AP/")}
    if per_class:
        width = max(map(len, per_class))
        lines += ["per class AP:"] + [f"  {name:<{width}}  {pct(v)}" for name, v in per_class.items()]
    if "mask_AP" in metrics:  # Mask R-CNN: the same statistics of the instance masks
        lines.append("masks: " + "  ".join(f"{k} {pct(metrics['mask_' + k])}" for k in COCO_STATS[:6]
                                           if "mask_" + k in metrics))
    if "MR-2" in metrics:
        lines.append(f"MR^-2 (log-average miss rate, FPPI 1e-2..1e0): {100 * metrics['MR-2']:.2f} %")
    return "\n".join(lines)


def evaluate_detector_checkpoint(model_path: str | Path, data: Any, *, device: str = "auto", batch_size: int = 2,
                                 num_workers: int = 2, miss_rate: str | None = None, out: str | Path | None = None,
                                 progress: bool = True) -> dict[str, Any]:
    """``unip eval --task detection``: loads a detector, evaluates it on a dataset, prints the COCO metrics.

    The images are read with the detector's stored input scaling and counts calibration (unless ``data`` gives
    a counts calibration), as in training and ``unip detect``.

    Args:
        model_path: ``best.pth`` / ``last.pth`` of a detection run, or any file :func:`load_detector` reads.
        data: A :class:`~unip_hub.detection.train_config.DetectionDataConfig`; ``images`` / ``annotations`` /
            ``labels`` name the evaluated set (or the ``val_`` ones), flir's val and llvip's test split otherwise.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: Images per forward pass.
        num_workers: DataLoader workers.
        miss_rate: Class whose MR^-2 is reported (``"auto"``: ``person`` when present); None: the default.
        out: Also write the metrics as JSON here.
        progress: Show a progress bar.
    """
    from dataclasses import replace

    from unip_hub.detection.checkpoint import load_detector
    from unip_hub.detection.evaluate import DetectionEvaluator
    from unip_hub.detection.train_config import detection_dataset
    from unip_hub.utils.atomic import write_text_atomic

    dev = "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
    model = load_detector(model_path, dev)
    counts = data.counts_to_celsius or model.counts_to_celsius
    data = replace(data, input_scaling=model.input_scaling, counts_to_celsius=tuple(counts) if counts else None)
    masks = model.config.get("head") == "mask_rcnn" and data.data in ("coco", "synthetic")  # else: boxes only
    dataset = detection_dataset(data, "val", fallback=True, masks=masks)
    if miss_rate is not None:
        DetectionEvaluator(dataset, miss_rate)  # an unknown class name fails here, before the long part
    metrics = evaluate_detector(model, dataset, batch_size, num_workers, progress, miss_rate or "auto")
    print(f"{model_path}: {len(dataset)} images, {model.config.get('arch')} {model.config.get('head')}")
    print(metrics_table({k: v for k, v in metrics.items() if k != "MR-2" or miss_rate is not None}))
    if out is not None:
        write_text_atomic(json.dumps({"checkpoint": str(model_path), "images": len(dataset), **metrics}, indent=2),
                          out)
    return metrics
