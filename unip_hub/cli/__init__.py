"""The ``unip`` command line: each subcommand lives in a small module with a ``register(subparsers)`` function.

Handlers import their heavy dependencies when they run, so ``unip --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# One module per group of subcommands, in the order they appear in ``unip --help``.
_COMMAND_MODULES = ("weights", "segment", "detect", "analysis", "train", "distill", "bench", "app")


def build_parser() -> argparse.ArgumentParser:
    """The ``unip`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="unip", description="UNIP infrared ViTs: weights, segmentation, "
                                     "attention analysis, distillation, benchmarks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"unip_hub.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unip`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"unip {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
