"""The settings of a fine-tuning run (:class:`FinetuneConfig`, one field per ``unip finetune`` option) and its result.

Defaults are the paper's recipe (reference section 4); ``None`` fields are filled by :meth:`FinetuneConfig.resolved`
from the dataset presets (:mod:`unip_hub.data.presets`) and the crop size.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unip_hub.constants import INPUT_SCALING, PATCH_SIZE, SEGMENTER_HEADS, SEGMENTER_NECKS, SLIDE_CROP, VIT_SIZES
from unip_hub.data.presets import DATASETS, get_preset
from unip_hub.train.config import RunOptions, option

if TYPE_CHECKING:
    from torch import nn

# settings that may change when a run is resumed; everything else must match the checkpoint
RESUMABLE_CHANGES = frozenset({"resume", "out_dir", "num_workers", "device", "log_interval", "eval_interval",
                               "tensorboard", "progress"})


@dataclass
class FinetuneConfig(RunOptions):
    """Every setting of a fine-tuning run (mapped one to one to ``unip finetune`` options)."""

    dataset: str = option("synthetic", "dataset layout (presets: SODA 14,400 it, MFNet 9,800, SCUT-Seg 16,800; "
                        "default synthetic)", choices=DATASETS)
    data_root: str | None = option(None, "dataset folder (folder: <root>/images/<split>, <root>/labels/<split>, "
                                 "classes.txt)")
    classes: str | None = option(None, "folder datasets: comma-separated class names or a file with one per line")
    train_split: str = option("train", "training split (default train)")
    test_split: str = option("test", "evaluation split (default test)")
    arch: str = option("unip_vit_small", "backbone (default unip_vit_small)", choices=tuple(VIT_SIZES))
    weights: str | None = option(None, "pre-trained backbone: registry tag (mae_large, ibot_large) or a file; "
                               "default random init")
    head: str | None = option(None, "decode head (default upernet; linear with --linear-probe)",
                            choices=SEGMENTER_HEADS)
    neck: str = option("last", "LL-FPN on the last block (default) or blocks 4/6/8/12", choices=SEGMENTER_NECKS)
    linear_probe: bool = option(False, "freeze the backbone (linear probing)", action="store_true")
    aux_weight: float = option(0.4, "weight of the auxiliary FCN loss (default 0.4)")
    drop_path: float = option(0.1, "stochastic depth rate (default 0.1)")
    init_values: float = option(1.0, "layer-scale initial value (default 1.0)")
    iterations: int | None = option(None, "training iterations (default: the dataset preset)")
    warmup: int | None = option(None, "linear warm-up iterations (default: the dataset preset)")
    batch_size: int = option(8, "global batch size over all processes (default 8)")
    weight_decay: float = option(0.05, "AdamW weight decay (default 0.05)")
    layer_decay: float = option(0.85, "layer-wise lr decay (default 0.85)")
    crop_size: int = option(SLIDE_CROP, "training crop side, a multiple of 16 (default 512)")
    scale: tuple[int, int] | None = option(None, "rescale target of train and test images (default 4 x crop, crop = "
                                         "2048 512)", metavar=("LONG", "SHORT"))
    sync_bn: bool = option(True, "SyncBatchNorm in multi-GPU runs (default on)")
    eval_mode: str = option("slide", "test inference (default slide)", choices=("slide", "whole"))
    eval_stride: int | None = option(None, "sliding-window stride (default 2/3 of the crop: 341 at 512)")
    out_dir: str = option("runs/finetune", "run folder for checkpoints and logs (default runs/finetune)")
    seed: int = option(0, "random seed (default 0)")
    synthetic_train: int = option(512, "synthetic dataset: training scenes (default 512)")
    synthetic_test: int = option(32, "synthetic dataset: test scenes (default 32)")
    synthetic_size: tuple[int, int] = option((128, 160), "synthetic scene size (default 128 160)", metavar=("H", "W"))
    # UnipViT overrides (Python API only: tiny tests)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})

    def resolved(self) -> FinetuneConfig:
        """A copy with the preset iterations / warm-up, head, scale, strides and eval interval filled in."""
        preset = get_preset(self.dataset)
        if self.dataset != "synthetic" and not self.data_root:
            raise ValueError(f"--data-root is required for dataset {self.dataset!r}")
        c = FinetuneConfig(**asdict(self))
        c.iterations = c.iterations if c.iterations is not None else preset.iterations
        c.warmup = c.warmup if c.warmup is not None else min(preset.warmup, c.iterations // 10 if self.iterations
                                                             else preset.warmup)
        c.head = c.head or ("linear" if c.linear_probe else "upernet")
        c.scale = tuple(c.scale) if c.scale is not None else (4 * c.crop_size, c.crop_size)
        c.eval_stride = c.eval_stride or round(c.crop_size * 2 / 3)
        c.eval_interval = c.eval_interval if c.eval_interval is not None else max(c.iterations // 10, 1)
        c.betas, c.synthetic_size = tuple(c.betas), tuple(c.synthetic_size)
        c.canonical_input()
        if c.iterations <= 0 or c.warmup < 0 or c.batch_size <= 0 or c.crop_size % PATCH_SIZE:
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


def config_from_options(options: argparse.Namespace | dict[str, Any]) -> FinetuneConfig:
    """The run config of the given options: over the defaults, or with ``resume=FILE`` over that run's settings.

    Only options present in ``options`` override (parse with ``suppress_defaults=True``); a resumed run's
    ``out_dir`` defaults to the checkpoint's folder.
    """
    from unip_hub.train.checkpointing import load_training_state
    from unip_hub.train.config import dataclass_from_args

    given = dict(vars(options) if isinstance(options, argparse.Namespace) else options)
    resume = given.get("resume")
    if not resume or resume == "auto":
        return dataclass_from_args(FinetuneConfig, given)
    saved = dict(load_training_state(resume)["config"])
    saved.setdefault("input_scaling", INPUT_SCALING)  # runs from before the setting existed used the default
    saved.setdefault("counts_to_celsius", None)
    saved.setdefault("out_dir", str(Path(resume).parent))
    given.setdefault("out_dir", str(Path(resume).parent))
    return dataclass_from_args(FinetuneConfig, given, base=saved)
