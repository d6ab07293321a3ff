"""``unip finetune``, ``unip eval``, ``unip demo``: fine-tuning, evaluation and the synthetic-scene demo.

``unip finetune`` options map one to one to :class:`unip_hub.train.finetune.FinetuneConfig` fields; only the
options given on the command line override the defaults (or, with ``--resume FILE``, the saved run settings).
Multi-GPU / multi-node: ``torchrun --nproc_per_node=N -m unip_hub finetune ...``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

# FinetuneConfig field -> (argparse keywords, help); booleans other than linear_probe get a --no-X form
_FINETUNE_OPTIONS: dict[str, tuple[dict, str]] = {
    "dataset": ({"choices": ("soda", "mfnet", "scut", "folder", "synthetic")},
                "dataset layout (presets: SODA 14,400 it, MFNet 9,800, SCUT-Seg 16,800; default synthetic)"),
    "data_root": ({}, "dataset folder (folder: <root>/images/<split>, <root>/labels/<split>, classes.txt)"),
    "classes": ({}, "folder datasets: comma-separated class names or a file with one per line"),
    "train_split": ({}, "training split (default train)"),
    "test_split": ({}, "evaluation split (default test)"),
    "arch": ({}, "backbone: unip_vit_tiny | unip_vit_small (default) | unip_vit_base | unip_vit_large"),
    "weights": ({}, "pre-trained backbone: registry tag (mae_large, ibot_large) or a file; default random init"),
    "head": ({"choices": ("upernet", "linear")}, "decode head (default upernet; linear with --linear-probe)"),
    "neck": ({"choices": ("last", "multi")}, "LL-FPN on the last block (default) or blocks 4/6/8/12"),
    "linear_probe": ({"action": "store_true"}, "freeze the backbone (linear probing)"),
    "aux_weight": ({"type": float}, "weight of the auxiliary FCN loss (default 0.4)"),
    "drop_path": ({"type": float}, "stochastic depth rate (default 0.1)"),
    "init_values": ({"type": float}, "layer-scale initial value (default 1.0)"),
    "iterations": ({"type": int}, "training iterations (default: the dataset preset)"),
    "warmup": ({"type": int}, "linear warm-up iterations (default: the dataset preset)"),
    "batch_size": ({"type": int}, "global batch size over all processes (default 8)"),
    "lr": ({"type": float}, "peak learning rate (default 1e-4)"),
    "betas": ({"type": float, "nargs": 2, "metavar": ("B1", "B2")}, "AdamW betas (default 0.9 0.999)"),
    "weight_decay": ({"type": float}, "AdamW weight decay (default 0.05)"),
    "layer_decay": ({"type": float}, "layer-wise lr decay (default 0.85)"),
    "clip_grad": ({"type": float}, "clip the gradient norm to this value (default: no clipping)"),
    "crop_size": ({"type": int}, "training crop side, a multiple of 16 (default 512)"),
    "scale": ({"type": int, "nargs": 2, "metavar": ("LONG", "SHORT")},
              "rescale target of train and test images (default 4 x crop, crop = 2048 512)"),
    "amp": ({"action": argparse.BooleanOptionalAction}, "mixed precision on CUDA (default on; ignored on CPU)"),
    "sync_bn": ({"action": argparse.BooleanOptionalAction}, "SyncBatchNorm in multi-GPU runs (default on)"),
    "eval_interval": ({"type": int}, "evaluate and checkpoint every N iterations (default: a tenth of the run)"),
    "eval_mode": ({"choices": ("slide", "whole")}, "test inference (default slide)"),
    "eval_stride": ({"type": int}, "sliding-window stride (default 2/3 of the crop: 341 at 512)"),
    "out_dir": ({}, "run folder for checkpoints and logs (default runs/finetune)"),
    "seed": ({"type": int}, "random seed (default 0)"),
    "resume": ({}, "continue a run from its last.pth (settings come from the file); 'auto': continue "
                     "<out-dir>/last.pth if present, else start (re-run the same command line)"),
    "num_workers": ({"type": int}, "data-loading workers per process (default 2)"),
    "device": ({"choices": ("auto", "cpu", "cuda")}, "device (default auto)"),
    "log_interval": ({"type": int}, "log every N iterations (default 20)"),
    "tensorboard": ({"action": argparse.BooleanOptionalAction}, "TensorBoard events in <out-dir>/tb (default on)"),
    "progress": ({"action": argparse.BooleanOptionalAction}, "progress bars (default on)"),
    "synthetic_train": ({"type": int}, "synthetic dataset: training scenes (default 512)"),
    "synthetic_test": ({"type": int}, "synthetic dataset: test scenes (default 32)"),
    "synthetic_size": ({"type": int, "nargs": 2, "metavar": ("H", "W")}, "synthetic scene size (default 128 160)"),
}


def finetune_config_from_args(args: argparse.Namespace):
    """The run config of parsed ``unip finetune`` options (given options over defaults or the resumed run's)."""
    from unip_hub.train.checkpointing import load_training_state
    from unip_hub.train.finetune import FinetuneConfig

    names = {f.name for f in fields(FinetuneConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    for key in ("betas", "scale", "synthetic_size"):
        if key in given:
            given[key] = tuple(given[key])
    resume = given.get("resume")
    if resume and resume != "auto":
        saved = dict(load_training_state(resume)["config"])
        saved.setdefault("out_dir", str(Path(resume).parent))
        given.setdefault("out_dir", str(Path(resume).parent))
        return FinetuneConfig(**{**{k: v for k, v in saved.items() if k in names}, **given})
    return FinetuneConfig(**given)


def _cmd_finetune(args: argparse.Namespace) -> int:
    from unip_hub.train import dist as udist
    from unip_hub.train.finetune import finetune

    try:
        result = finetune(finetune_config_from_args(args))
        main_process = udist.is_main_process()
    finally:
        udist.cleanup()
    if main_process:
        print(f"done: {result.iteration} iterations, best mIoU {100 * result.best_mIoU:.2f} at iteration "
              f"{result.best_iteration}; checkpoints in {result.out_dir} (best.pth, last.pth)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from unip_hub.hub.segmenters import load_segmenter
    from unip_hub.metrics import format_table
    from unip_hub.train.evaluate import evaluate, save_results, summary_line
    from unip_hub.train.finetune import FinetuneConfig, build_dataset

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    seg = load_segmenter(args.checkpoint).to(device).eval()
    crop = args.crop_size or int(seg.config.get("img_size") or 512)
    cfg = FinetuneConfig(dataset=args.dataset, data_root=args.data_root, classes=args.classes, test_split=args.split,
                         crop_size=crop, seed=args.seed)
    if args.dataset == "synthetic" and args.synthetic_size:
        cfg.synthetic_size = tuple(args.synthetic_size)
    cfg = cfg.resolved()
    dataset = build_dataset(cfg, "test")
    scale = None if args.native else (tuple(args.scale) if args.scale else cfg.scale)
    stride = args.stride or round(crop * 2 / 3)
    result = evaluate(seg, dataset, args.mode, crop, stride, scale, batch_windows=args.batch_windows,
                      num_workers=args.num_workers, progress=not args.no_progress)
    names = list(dataset.CLASSES)
    print(format_table(result, names))
    if args.out:
        save_results(result, args.out, names, {"checkpoint": str(args.checkpoint), "dataset": args.dataset,
                                               "split": args.split, "crop_size": crop, "stride": stride,
                                               "scale": list(scale) if scale else None})
        print(f"saved {args.out}")
    print(summary_line(result), file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from unip_hub.train.demo import run_demo

    run_demo(args.out, minutes=args.minutes, iterations=args.iterations, weights=args.weights, quick=args.quick,
             seed=args.seed, progress=not args.no_progress)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``finetune``, ``eval`` and ``demo``."""
    p = sub.add_parser("finetune", help="fine-tune (or linear-probe) a UNIP segmenter; resumable; torchrun-ready",
                       argument_default=argparse.SUPPRESS)
    for name, (kw, text) in _FINETUNE_OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, help=text, **kw)
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("eval", help="mIoU / mAcc / aAcc and per-class IoU of a segmenter checkpoint on a dataset")
    p.add_argument("checkpoint", help="segmenter checkpoint: best.pth / last.pth of unip finetune, .safetensors, "
                   "or an mmseg checkpoint of the research code")
    p.add_argument("--dataset", required=True, choices=("soda", "mfnet", "scut", "folder", "synthetic"))
    p.add_argument("--data-root", default=None, help="dataset folder")
    p.add_argument("--classes", default=None, help="folder datasets: class names (comma-separated) or a file")
    p.add_argument("--split", default="test", help="split to evaluate (default test; SCUT-Seg: val)")
    p.add_argument("--mode", default="slide", choices=("slide", "whole"), help="inference mode (default slide)")
    p.add_argument("--crop-size", type=int, default=None, help="window side (default: the training crop, 512)")
    p.add_argument("--stride", type=int, default=None, help="window stride (default 2/3 of the crop: 341)")
    p.add_argument("--scale", type=int, nargs=2, metavar=("LONG", "SHORT"), default=None,
                   help="fit images to this (long, short) edge first (default 4 x crop, crop = 2048 512)")
    p.add_argument("--native", action="store_true", help="no rescaling: infer at each image's own size")
    p.add_argument("--batch-windows", type=int, default=4, help="sliding windows per forward pass")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="synthetic dataset: seed of the run it was trained with")
    p.add_argument("--synthetic-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("demo", help="fine-tune UNIP-T on synthetic thermal scenes in minutes (no downloads), "
                       "evaluate, write overlays and curves")
    p.add_argument("--out", default="unip-demo", help="output folder (default ./unip-demo)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=3.5, help="training time budget (default 3.5)")
    budget.add_argument("--iterations", type=int, default=None, help="fixed number of iterations instead")
    p.add_argument("--weights", default=None, help="start from pre-trained UNIP-T weights (tag or file)")
    p.add_argument("--quick", action="store_true", help="a seconds-long toy run (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
