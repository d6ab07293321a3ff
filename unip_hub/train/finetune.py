"""Fine-tuning UNIP segmenters (LL-FPN + UPerNet, or a linear probe): the run config and :func:`finetune`.

The recipe of the paper (reference section 4): AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05, layer-wise lr
decay 0.85, poly decay after a linear warm-up from 1e-6 x lr, batch 8, drop-path 0.1, auxiliary FCN loss 0.4,
512x512 crops, mixed precision, and per-dataset iteration counts (:data:`PRESETS`). Runs are resumable
(``last.pth`` holds model, optimizer, scaler, iteration, config and rng states, written atomically), keep the best
checkpoint by mIoU (``best.pth``), log to CSV and TensorBoard, and scale to several GPUs / nodes under ``torchrun``
(DistributedDataParallel, SyncBatchNorm on GPUs; ``batch_size`` is the global batch).

>>> from unip_hub.train.finetune import FinetuneConfig, finetune
>>> finetune(FinetuneConfig(dataset="soda", data_root="data/SODA", arch="unip_vit_small", weights="mae_large"))
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from unip_hub.checkpoints import load_state_dict_strict
from unip_hub.train import dist as udist
from unip_hub.train.checkpointing import (
    atomic_write_text,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    save_checkpoint_atomic,
)
from unip_hub.train.engine import (
    LoopSettings,
    ResumableBatchSampler,
    SegTrainWrapper,
    StepContext,
    batch_stream,
    train_loop,
)
from unip_hub.train.evaluate import evaluate, save_results, summary_line
from unip_hub.train.logger import RunLogger
from unip_hub.train.optim import param_groups_lrd

DATASETS = ("soda", "mfnet", "scut", "folder", "synthetic")
# dataset -> (classes, iterations, warm-up) of the paper; folder/synthetic: our defaults
PRESETS: dict[str, tuple[int | None, int, int]] = {
    "soda": (21, 14_400, 1_500),
    "mfnet": (9, 9_800, 1_000),
    "scut": (10, 16_800, 1_700),
    "folder": (None, 8_000, 800),
    "synthetic": (7, 1_000, 100),
}
# settings that may change when a run is resumed; everything else must match the checkpoint
RESUMABLE_CHANGES = frozenset({"resume", "out_dir", "num_workers", "device", "log_interval", "eval_interval",
                               "tensorboard", "progress"})


@dataclass
class FinetuneConfig:
    """Every setting of a fine-tuning run (mapped one to one to ``unip finetune`` options)."""

    dataset: str = "synthetic"  # soda | mfnet | scut | folder | synthetic
    data_root: str | None = None  # dataset folder (folder: <root>/images/<split>, <root>/labels/<split>)
    classes: str | None = None  # folder datasets: comma-separated names or a file (default <root>/classes.txt)
    train_split: str = "train"
    test_split: str = "test"
    arch: str = "unip_vit_small"
    weights: str | None = None  # pre-trained backbone: registry tag (mae_large...) or a file; None = random init
    head: str | None = None  # upernet | linear (default: linear with linear_probe, else upernet)
    neck: str = "last"  # last (LL-FPN) | multi (blocks 4, 6, 8, 12)
    linear_probe: bool = False  # freeze the backbone
    aux_weight: float = 0.4
    drop_path: float = 0.1
    init_values: float = 1.0  # layer-scale initial value
    iterations: int | None = None  # default: the dataset preset
    warmup: int | None = None  # default: the dataset preset
    batch_size: int = 8  # global batch over all processes
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    layer_decay: float = 0.85
    clip_grad: float | None = None
    crop_size: int = 512
    scale: tuple[int, int] | None = None  # rescale target (long, short); default (4 x crop, crop) = (2048, 512)
    amp: bool = True  # fp16 autocast + loss scaling on CUDA (ignored on CPU)
    sync_bn: bool = True  # SyncBatchNorm in multi-GPU runs (CPU/gloo runs keep per-process BatchNorm)
    eval_interval: int | None = None  # default: every tenth of the run; the end is always evaluated
    eval_mode: str = "slide"  # slide | whole
    eval_stride: int | None = None  # default: 2/3 of the crop (341 at 512)
    out_dir: str = "runs/finetune"
    seed: int = 0
    resume: str | None = None  # a last.pth, or "auto" (<out_dir>/last.pth if it exists)
    num_workers: int = 2
    device: str = "auto"  # auto | cpu | cuda
    log_interval: int = 20
    tensorboard: bool = True
    progress: bool = True
    synthetic_train: int = 512  # synthetic dataset: scenes for training / testing, and their (H, W)
    synthetic_test: int = 32
    synthetic_size: tuple[int, int] = (128, 160)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # UnipViT overrides (Python API: tiny tests)

    def resolved(self) -> FinetuneConfig:
        """A copy with the preset iterations / warm-up, head, scale, strides and eval interval filled in."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.dataset not in ("synthetic",) and not self.data_root:
            raise ValueError(f"--data-root is required for dataset {self.dataset!r}")
        _, iters, warm = PRESETS[self.dataset]
        c = FinetuneConfig(**asdict(self))
        c.iterations = c.iterations if c.iterations is not None else iters
        c.warmup = c.warmup if c.warmup is not None else min(warm, c.iterations // 10 if self.iterations else warm)
        c.head = c.head or ("linear" if c.linear_probe else "upernet")
        c.scale = tuple(c.scale) if c.scale is not None else (4 * c.crop_size, c.crop_size)
        c.eval_stride = c.eval_stride or round(c.crop_size * 2 / 3)
        c.eval_interval = c.eval_interval if c.eval_interval is not None else max(c.iterations // 10, 1)
        c.betas, c.synthetic_size = tuple(c.betas), tuple(c.synthetic_size)
        if c.iterations <= 0 or c.warmup < 0 or c.batch_size <= 0 or c.crop_size % 16:
            raise ValueError("iterations and batch_size must be positive, warmup >= 0, crop_size a multiple of 16")
        if c.eval_mode not in ("slide", "whole"):
            raise ValueError(f"eval_mode must be 'slide' or 'whole', got {c.eval_mode!r}")
        return c


@dataclass
class FinetuneResult:
    """What a run produced."""

    out_dir: Path
    iteration: int
    best_mIoU: float
    best_iteration: int
    final: dict[str, Any] | None  # the last evaluation (SegMetric.compute() + mode, num_images)
    history: list[dict[str, float]]  # per-iteration losses of this call
    model: nn.Module | None = None  # the trained segmenter (last state, on its device, eval mode)


# --------------------------------------------------------------------------------------------------- data
def _read_classes(cfg: FinetuneConfig) -> list[str]:
    if cfg.classes and not Path(cfg.classes).is_file():
        return [c.strip() for c in cfg.classes.split(",") if c.strip()]
    path = Path(cfg.classes) if cfg.classes else Path(cfg.data_root) / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no class list: {path} does not exist; write one class name per line there or "
                                "pass --classes 'background,road,...'")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def build_dataset(cfg: FinetuneConfig, part: str = "train") -> Any:
    """The training set (recipe augmentation) or the test set (native size, no augmentation) of a resolved config."""
    from unip_hub.data import datasets as D
    from unip_hub.data.synthetic import SyntheticThermalDataset
    from unip_hub.data.transforms import SegTransformConfig, TrainPipeline

    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    train = part == "train"
    pipe = TrainPipeline(SegTransformConfig(crop_size=(cfg.crop_size, cfg.crop_size), scale=cfg.scale)) if train \
        else None
    seed = cfg.seed if train else None
    if cfg.dataset == "synthetic":
        n = cfg.synthetic_train if train else cfg.synthetic_test
        return SyntheticThermalDataset(n, cfg.synthetic_size, cfg.seed if train else cfg.seed + 10_000, pipe)
    split = cfg.train_split if train else cfg.test_split
    if cfg.dataset == "folder":
        root = Path(cfg.data_root)
        return D.FolderSegDataset(root / "images" / split, root / "labels" / split, _read_classes(cfg), pipeline=pipe,
                                  seed=seed)
    cls = {"soda": D.SODADataset, "mfnet": D.MFNetDataset, "scut": D.SCUTSegDataset}[cfg.dataset]
    return cls(cfg.data_root, split, pipeline=pipe, seed=seed)


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
    return seg


def segmenter_meta(seg: nn.Module) -> dict[str, Any]:
    """The ``meta`` saved beside the weights (what ``load_segmenter`` needs), as plain JSON types."""
    meta = {**seg.config, "num_classes": seg.num_classes, "class_names": seg.class_names, "palette": seg.palette,
            "mean": seg.mean, "std": seg.std}
    return json.loads(json.dumps(meta))


def _check_resume(cfg: FinetuneConfig, saved: dict[str, Any], path: Path) -> None:
    mine = asdict(cfg)
    norm = lambda v: list(v) if isinstance(v, (tuple, list)) else v  # noqa: E731
    diff = [k for k in mine if k not in RESUMABLE_CHANGES and norm(mine[k]) != norm(saved.get(k))]
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} in the checkpoint, {mine[k]!r} now" for k in diff)
        raise ValueError(f"cannot resume {path}: the run settings differ ({detail}). Resuming continues the same "
                         "run; start a new --out-dir to change them")


# ---------------------------------------------------------------------------------------------------- run
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
    info = udist.init_distributed(None if cfg.device == "auto" else cfg.device)
    device = torch.device(info.device)
    main = info.rank == 0
    out = Path(cfg.out_dir)
    resume = Path(cfg.resume) if cfg.resume not in (None, "auto") else None
    if cfg.resume == "auto" and (out / "last.pth").is_file():
        resume = out / "last.pth"
    state = load_training_state(resume) if resume is not None else None
    if state is not None:
        _check_resume(cfg, state["config"], resume)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {info.world_size} processes")
    torch.manual_seed(cfg.seed + info.rank)

    train_ds, test_ds = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    seg = build_segmenter(cfg, list(train_ds.CLASSES), getattr(train_ds, "PALETTE", None)).to(device)
    if main and cfg.weights is None and state is None:
        print("note: no --weights given, the backbone starts from random initialisation", file=sys.stderr)
    wrapper: nn.Module = SegTrainWrapper(seg)
    if info.distributed and cfg.sync_bn and device.type == "cuda":
        wrapper = nn.SyncBatchNorm.convert_sync_batchnorm(wrapper)
    # fused AdamW: one kernel for all tensors (4-8x faster than the per-tensor loop on CPU)
    optimizer = torch.optim.AdamW(param_groups_lrd(seg, cfg.weight_decay, cfg.layer_decay), lr=cfg.lr,
                                  betas=cfg.betas, fused=device.type in ("cpu", "cuda"))
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    start, best, best_it, evals = 0, -1.0, 0, []
    if state is not None:
        load_state_dict_strict(seg, state["state_dict"], source=str(resume))
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, best, best_it = int(state["iteration"]), float(state["best_mIoU"]), int(state["best_iteration"])
        evals = list(state.get("evals", []))
        rngs = state.get("rng") or []
        if info.rank < len(rngs):
            restore_rng_state(rngs[info.rank])
        if main:
            print(f"resumed {resume} at iteration {start}/{cfg.iterations}", file=sys.stderr)
    if info.distributed:
        wrapper = DistributedDataParallel(wrapper, device_ids=[device.index] if device.type == "cuda" else None)

    logger = RunLogger(out, start, cfg.tensorboard, enabled=main)
    if main:
        atomic_write_text(json.dumps(asdict(cfg), indent=2), out / "config.json")
    final: dict[str, Any] | None = evals[-1] if evals else None

    def save(iteration: int, names: tuple[str, ...]) -> None:
        rngs = [capture_rng_state()]
        if info.distributed:
            rngs = [None] * info.world_size
            torch.distributed.all_gather_object(rngs, capture_rng_state())
        if not main:
            return
        ckpt = {"state_dict": {k: v.detach().cpu() for k, v in seg.state_dict().items()}, "meta": segmenter_meta(seg),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else {},
                "iteration": iteration, "config": asdict(cfg), "rng": rngs, "best_mIoU": best,
                "best_iteration": best_it, "evals": evals}
        for name in names:
            save_checkpoint_atomic(ckpt, out / name)

    def on_eval(iteration: int) -> None:
        nonlocal best, best_it, final
        result = evaluate(seg, test_ds, cfg.eval_mode, cfg.crop_size, cfg.eval_stride, cfg.scale,
                          num_workers=min(cfg.num_workers, 2), progress=cfg.progress)
        final = result
        evals.append({"iteration": iteration, **{k: result[k] for k in ("mIoU", "mAcc", "aAcc")}})
        logger.log(iteration, "eval", result)
        improved = result["mIoU"] > best
        if improved:
            best, best_it = result["mIoU"], iteration
        save(iteration, ("last.pth", "best.pth") if improved else ("last.pth",))
        if main:
            save_results(result, out / "eval.json", list(test_ds.CLASSES), {"iteration": iteration})
            print(f"iteration {iteration}: {summary_line(result)} (best mIoU {100 * best:.2f} at {best_it})",
                  file=sys.stderr)
        udist.barrier()

    per_rank = cfg.batch_size // info.world_size
    sampler = ResumableBatchSampler(len(train_ds), per_rank, cfg.seed, info.rank, info.world_size)
    ctx = StepContext(wrapper, optimizer, scaler, device, cfg.aux_weight if cfg.head == "upernet" else 0.0,
                      torch.float16 if use_amp else None, cfg.clip_grad)
    settings = LoopSettings(cfg.iterations, cfg.warmup, cfg.lr, start, cfg.eval_interval, cfg.log_interval,
                            stop_after, cfg.progress)
    batches = batch_stream(train_ds, sampler, start, cfg.num_workers, pin_memory=device.type == "cuda")
    try:
        history = train_loop(ctx, batches, settings, on_log=lambda it, row: logger.log(it, "train", row),
                             on_eval=on_eval, on_stop=lambda it: save(it, ("last.pth",)))
    finally:
        batches.close()
        logger.close()
    done = start + len(history)
    return FinetuneResult(out, done, best, best_it, final, history, seg.eval())
