"""Options several ``unip`` subcommands share: where and how the model runs (device, runtime, precision, int8).

Light on purpose: no torch, no onnxruntime at import (``unip --help`` stays fast).
"""

from __future__ import annotations

import argparse
from typing import Any

from unip_hub.constants import PRECISIONS, RUNTIMES


def add_runtime_arguments(p: argparse.ArgumentParser, several: bool = False) -> None:
    """Adds ``--device``, ``--runtime``, ``--precision``, ``--cache-dir``, ``--calibration-frames``,
    ``--min-agreement``.

    Args:
        p: The subcommand's parser.
        several: ``--runtime`` / ``--precision`` take several values (the benchmark measures every pair).
    """
    nargs = "+" if several else None
    default_rt, default_pr = (["torch"], ["fp32"]) if several else ("torch", "fp32")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default cpu)")
    g.add_argument("--runtime", nargs=nargs, choices=RUNTIMES, default=default_rt,
                   help="torch (eager) or onnxruntime (the exported graph, graph optimisations on); default torch")
    g.add_argument("--precision", nargs=nargs, choices=PRECISIONS, default=default_pr,
                   help="fp32; int8 with onnxruntime (static convs, dynamic matmuls); bf16 / fp16 (GPU) with torch")
    g.add_argument("--cache-dir", default=None,
                   help="folder of the exported / quantised graphs (default: next to the checkpoint, else "
                        "~/.cache/unip/runtime)")
    if not several:
        g.add_argument("--calibration-frames", default=None, metavar="DIR",
                       help="int8: thermal frames to calibrate on and to check agreement on (default: synthetic "
                            "scenes)")
        g.add_argument("--min-agreement", type=float, default=0.99,
                       help="int8: smallest accepted pixel agreement with fp32 torch on the calibration frames "
                            "(default 0.99)")


COUNTS_TO_CELSIUS_HELP = ("16-bit counts to degC: GAIN * count + OFFSET (Boson TLinear: 0.01 -273.15); default: the "
                          "calibration stored in the checkpoint, if any")


def add_counts_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Adds ``--counts-to-celsius GAIN OFFSET`` (``unip segment``, ``unip eval``; ``unip finetune`` has the same
    option from :class:`unip_hub.train.finetune_config.FinetuneConfig`)."""
    p.add_argument("--counts-to-celsius", type=float, nargs=2, metavar=("GAIN", "OFFSET"), default=None,
                   help=COUNTS_TO_CELSIUS_HELP)


def runtime_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keywords of :func:`unip_hub.runtime.load_runtime` from the parsed options of :func:`add_runtime_arguments`."""
    return {"runtime": args.runtime, "precision": args.precision, "cache_dir": args.cache_dir,
            "calibration": args.calibration_frames, "min_agreement": args.min_agreement, "device": args.device}


def add_radiometric_arguments(p: argparse.ArgumentParser, hot_help: str) -> argparse._ArgumentGroup:
    """Adds the ``radiometric input`` group (``--scaling``, ``--counts-to-celsius``, ``--unit``, the R-JPEG
    parameters, ``--hot-above``) of ``unip segment`` and ``unip detect``; returns it for the command's own."""
    g = p.add_argument_group("radiometric input (temperatures)")
    g.add_argument("--scaling", default=None, metavar="SPEC",
                   help="input scaling: 'percentile 0.5/99.5', 'window LOW..HIGH degC' or '8-bit' (default: the "
                        "one stored in the checkpoint, else percentile 0.5/99.5)")
    add_counts_argument(g)  # --counts-to-celsius GAIN OFFSET
    g.add_argument("--unit", choices=("auto", "celsius", "kelvin"), default="auto",
                   help="unit of float TIFF/NPY frames (auto: median above 173.15 = kelvin)")
    g.add_argument("--emissivity", type=float, default=None, help="FLIR R-JPEG emissivity (default: the file's)")
    g.add_argument("--reflected-temp", type=float, default=None, metavar="DEGC",
                   help="FLIR R-JPEG reflected apparent temperature (default: the file's)")
    g.add_argument("--distance", type=float, default=None, metavar="M",
                   help="FLIR R-JPEG object distance in metres (default: the file's)")
    g.add_argument("--hot-above", type=float, default=None, metavar="DEGC", help=hot_help)
    return g


def calibration_of(args: argparse.Namespace) -> Any:
    """The :class:`~unip_hub.data.radiometric.Calibration` of :func:`add_radiometric_arguments`' options."""
    from unip_hub.data.radiometric import Calibration

    return Calibration(args.unit, tuple(args.counts_to_celsius) if args.counts_to_celsius else None,
                       args.emissivity, args.reflected_temp, args.distance)


def add_video_arguments(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Adds the ``video`` group (``--video``, ``--batch-frames``, ``--smoothing``, ``--max-frames``, ``--fps``) of
    ``unip segment`` and ``unip detect``; returns it for the command's own."""
    v = p.add_argument_group("video (.mp4/.avi/.mkv/.mov files; folders of frames with --video)")
    v.add_argument("--video", action="store_true", help="read folders as frame sequences (one video each)")
    v.add_argument("--batch-frames", type=int, default=4, help="frames per model call (default 4)")
    v.add_argument("--smoothing", type=float, default=0.9,
                   help="weight of the past in the running percentile bounds, 0..1 (default 0.9)")
    v.add_argument("--max-frames", type=int, default=None, metavar="N", help="only the first N frames")
    v.add_argument("--fps", type=float, default=10.0, help="frame rate of a folder's video (default 10)")
    return v
