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
