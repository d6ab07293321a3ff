"""``unip finetune``, ``unip eval``, ``unip demo``: fine-tuning, evaluation and the synthetic-scene demo.

``unip finetune`` options map one to one to :class:`unip_hub.train.finetune_config.FinetuneConfig` fields (help
from the fields' metadata, :mod:`unip_hub.train.config`); only the options given on the command line override the
defaults (or, with ``--resume FILE``, the saved run settings).
Multi-GPU / multi-node: ``torchrun --nproc_per_node=N -m unip_hub finetune ...``.
"""

from __future__ import annotations

import argparse


def _cmd_finetune(args: argparse.Namespace) -> int:
    from unip_hub.train.finetune import run_finetune

    run_finetune(args)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from unip_hub.train.evaluate import evaluate_checkpoint

    evaluate_checkpoint(args.checkpoint, args.dataset, args.data_root, classes=args.classes, split=args.split,
                        mode=args.mode, crop_size=args.crop_size, stride=args.stride, scale=args.scale,
                        native=args.native, batch_windows=args.batch_windows, out=args.out, device=args.device,
                        num_workers=args.num_workers, seed=args.seed, synthetic_size=args.synthetic_size,
                        progress=not args.no_progress, counts_to_celsius=args.counts_to_celsius)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from unip_hub.train.demo import run_demo

    run_demo(args.out, minutes=args.minutes, iterations=args.iterations, weights=args.weights, quick=args.quick,
             seed=args.seed, progress=not args.no_progress)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``finetune``, ``eval`` and ``demo``."""
    from unip_hub.cli.common import add_counts_argument
    from unip_hub.data.presets import DATASETS
    from unip_hub.train.config import add_dataclass_arguments
    from unip_hub.train.finetune_config import FinetuneConfig

    p = sub.add_parser("finetune", help="fine-tune (or linear-probe) a UNIP segmenter; resumable; torchrun-ready")
    add_dataclass_arguments(p, FinetuneConfig, suppress_defaults=True)
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("eval", help="mIoU / mAcc / aAcc and per-class IoU of a segmenter checkpoint on a dataset")
    p.add_argument("checkpoint", help="segmenter checkpoint: best.pth / last.pth of unip finetune, .safetensors, "
                   "or an mmseg checkpoint of the research code")
    p.add_argument("--dataset", required=True, choices=DATASETS)
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
    add_counts_argument(p)  # --counts-to-celsius GAIN OFFSET (default: the checkpoint's)
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
