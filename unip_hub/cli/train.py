"""``unip finetune``, ``unip eval``, ``unip demo``: fine-tuning, evaluation and the synthetic-scene demo.

``unip finetune`` options map one to one to :class:`unip_hub.train.finetune_config.FinetuneConfig` fields (help
from the fields' metadata, :mod:`unip_hub.train.config`); only the options given on the command line override the
defaults (or, with ``--resume FILE``, the saved run settings).
Multi-GPU / multi-node: ``torchrun --nproc_per_node=N -m unip_hub finetune ...``.
"""

from __future__ import annotations

import argparse

TASKS = ("segmentation", "detection")
_NOT_OPTIONS = {"task", "func", "command"}


def _task_configs() -> dict[str, type]:
    from unip_hub.detection.train_config import DetectionConfig
    from unip_hub.train.finetune_config import FinetuneConfig

    return {"segmentation": FinetuneConfig, "detection": DetectionConfig}


def _add_task_options(p: argparse.ArgumentParser, cls: type, title: str, skip: tuple[str, ...] = ()) -> None:
    """Adds the options of dataclass ``cls`` that ``p`` lacks, in a group; an option both tasks have keeps one
    definition, its choices widened to both tasks' (each task checks its own, :func:`_check_task_options`)."""
    from unip_hub.train.config import _keywords, cli_fields

    known = {a.dest: a for a in p._actions}
    group = p.add_argument_group(title)
    for f, typ in cli_fields(cls):
        if f.name in skip:
            continue
        if f.name in known:
            action, extra = known[f.name], f.metadata.get("choices")
            if action.choices is not None and extra:
                action.choices = tuple(dict.fromkeys([*action.choices, *extra]))
            continue
        group.add_argument("--" + f.name.replace("_", "-"), **_keywords(f, typ, True))


def _check_task_options(args: argparse.Namespace, cls: type, command: str, ignore: tuple[str, ...] = ()) -> None:
    """Refuses options given on the command line that ``--task`` does not have, or a choice it does not take."""
    from unip_hub.train.config import cli_fields

    fields = {f.name: f for f, _ in cli_fields(cls)}
    task = getattr(args, "task", "segmentation")
    for name, value in vars(args).items():
        if name in _NOT_OPTIONS or name in ignore:
            continue
        if name not in fields:
            raise ValueError(f"--{name.replace('_', '-')} is not an option of unip {command} --task {task}")
        choices = fields[name].metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise ValueError(f"--{name.replace('_', '-')} {value}: --task {task} takes one of {', '.join(choices)}")


def _resumed_task(args: argparse.Namespace) -> str:
    """``--task`` as given; else the task of the ``--resume FILE`` checkpoint; else segmentation."""
    resume = getattr(args, "resume", None)
    if args.task is None and resume not in (None, "auto"):
        from unip_hub.train.checkpointing import load_training_state

        return str(load_training_state(resume).get("task", "segmentation"))
    return args.task or "segmentation"


def _cmd_finetune(args: argparse.Namespace) -> int:
    args.task = _resumed_task(args)
    _check_task_options(args, _task_configs()[args.task], "finetune")
    if args.task == "detection":
        from unip_hub.detection.train import run_detection_finetune

        run_detection_finetune(args)
        return 0
    from unip_hub.train.finetune import run_finetune

    run_finetune(args)
    return 0


_EVAL_DETECTION_SKIP = ("input_scaling", "val_images", "val_annotations", "val_labels")


def _eval_detection(args: argparse.Namespace) -> int:
    from unip_hub.detection.train import evaluate_detector_checkpoint
    from unip_hub.detection.train_config import DetectionDataConfig
    from unip_hub.train.config import cli_fields

    path = args.model or args.checkpoint
    if not path:
        raise ValueError("unip eval --task detection needs the detector: --model FILE")
    names = {f.name for f, _ in cli_fields(DetectionDataConfig)} - set(_EVAL_DETECTION_SKIP)
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    given["seed"] = args.seed if args.seed is not None else DetectionDataConfig.seed
    data = DetectionDataConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})
    evaluate_detector_checkpoint(path, data, device=args.device, batch_size=args.batch_size,
                                 num_workers=args.num_workers, miss_rate=args.miss_rate, out=args.out,
                                 progress=not args.no_progress)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.task == "detection":
        return _eval_detection(args)
    from unip_hub.train.evaluate import evaluate_checkpoint

    detection_only = [k for k in ("data", "images", "annotations", "labels", "root", "version", "miss_rate")
                      if getattr(args, k, None) not in (None, False)]
    if detection_only:
        raise ValueError(f"--{detection_only[0].replace('_', '-')} is an option of unip eval --task detection")
    checkpoint = args.checkpoint or args.model
    if not checkpoint or not args.dataset:
        raise ValueError("unip eval needs a segmenter checkpoint and --dataset (detectors: --task detection)")
    evaluate_checkpoint(checkpoint, args.dataset, args.data_root, classes=args.classes, split=args.split,
                        mode=args.mode, crop_size=args.crop_size, stride=args.stride, scale=args.scale,
                        native=args.native, batch_windows=args.batch_windows, out=args.out, device=args.device,
                        num_workers=args.num_workers, seed=args.seed or 0, synthetic_size=args.synthetic_size,
                        progress=not args.no_progress, counts_to_celsius=args.counts_to_celsius)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.task == "detection":
        from unip_hub.detection.demo import run_detection_demo

        run_detection_demo(args.out, minutes=args.minutes, iterations=args.iterations, weights=args.weights,
                           quick=args.quick, seed=args.seed, progress=not args.no_progress)
        return 0
    from unip_hub.train.demo import run_demo

    run_demo(args.out, minutes=args.minutes, iterations=args.iterations, weights=args.weights, quick=args.quick,
             seed=args.seed, progress=not args.no_progress)
    return 0


_DETECTION_TITLE = (
    "detection (--task detection; options above that both tasks have default to the detection recipe there: "
    "--batch-size 2, --weight-decay 0.1, --layer-decay 0.7, --warmup 250, --seed 42, --out-dir runs/detection, "
    "--iterations 12 epochs)")


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``finetune``, ``eval`` and ``demo`` (each with ``--task segmentation|detection``)."""
    _register_finetune(sub)
    _register_eval(sub)
    _register_demo(sub)


def _register_finetune(sub: argparse._SubParsersAction) -> None:
    from unip_hub.detection.train_config import DetectionConfig
    from unip_hub.train.config import add_dataclass_arguments
    from unip_hub.train.finetune_config import FinetuneConfig

    p = sub.add_parser("finetune", help="fine-tune (or linear-probe) a UNIP segmenter, or a detector with --task "
                       "detection; resumable; torchrun-ready")
    p.add_argument("--task", choices=TASKS, default=None,
                   help="segmentation (default; LL-FPN + UPerNet) or detection (LL-FPN + torchvision detectors); "
                   "with --resume FILE: the file's")
    add_dataclass_arguments(p, FinetuneConfig, suppress_defaults=True)
    _add_task_options(p, DetectionConfig, _DETECTION_TITLE)
    p.set_defaults(func=_cmd_finetune)


def _register_eval(sub: argparse._SubParsersAction) -> None:
    from unip_hub.cli.common import add_counts_argument
    from unip_hub.data.presets import DATASETS
    from unip_hub.detection.train_config import DetectionDataConfig

    p = sub.add_parser("eval", help="mIoU / mAcc / aAcc and per-class IoU of a segmenter checkpoint on a dataset; "
                       "COCO AP (and MR^-2) of a detector with --task detection")
    p.add_argument("checkpoint", nargs="?", default=None, help="segmenter checkpoint: best.pth / last.pth of unip "
                   "finetune, .safetensors, or an mmseg checkpoint of the research code")
    p.add_argument("--task", choices=TASKS, default="segmentation", help="segmentation (default) or detection")
    p.add_argument("--model", default=None, help="the checkpoint, as an option (detection: best.pth of unip "
                   "finetune --task detection, or a file of save_detector)")
    p.add_argument("--dataset", default=None, choices=DATASETS, help="segmentation dataset layout (required there)")
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
    p.add_argument("--seed", type=int, default=None, help="synthetic dataset: seed of the run it was trained with "
                   "(default 0; detection: 42)")
    p.add_argument("--synthetic-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    add_counts_argument(p)  # --counts-to-celsius GAIN OFFSET (default: the checkpoint's)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--batch-size", type=int, default=2, help="detection: images per forward pass (default 2)")
    p.add_argument("--miss-rate", nargs="?", const="auto", default=None, metavar="CLASS",
                   help="detection: also print the log-average miss rate MR^-2 of CLASS (default person)")
    _add_task_options(p, DetectionDataConfig, "detection data (--task detection; the images are read with the "
                      "detector's stored input scaling)", skip=_EVAL_DETECTION_SKIP)
    p.set_defaults(func=_cmd_eval)


def _register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="fine-tune UNIP-T on synthetic thermal scenes in minutes (no downloads), "
                       "evaluate, write overlays and curves")
    p.add_argument("--out", default="unip-demo", help="output folder (default ./unip-demo)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=3.5, help="training time budget (default 3.5)")
    budget.add_argument("--iterations", type=int, default=None, help="fixed number of iterations instead")
    p.add_argument("--weights", default=None, help="start from pre-trained UNIP-T weights (tag or file)")
    p.add_argument("--task", choices=TASKS, default="segmentation",
                   help="segmentation (default: UNIP-T LL-FPN + UPerNet) or detection (UNIP-T Faster R-CNN on the "
                   "scenes' people and cars)")
    p.add_argument("--quick", action="store_true", help="a seconds-long toy run (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
