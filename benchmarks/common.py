"""Shared command line of the ``bench_*.py`` scripts: the options of ``unip benchmark`` for one group."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing


def run_group(group: str, description: str) -> int:
    """Parses the common options and runs the ``group`` cases of the suite; prints the tables, writes JSON."""
    from unip_hub.benchmark import BenchConfig, run_benchmark
    from unip_hub.benchmark.config import ARCHS, DTYPE_NAMES
    from unip_hub.cli.common import add_runtime_arguments

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS), help="backbone sizes")
    add_runtime_arguments(p, several=True)  # --device, --runtime ..., --precision ..., --cache-dir
    p.add_argument("--dtype", choices=DTYPE_NAMES, default="fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile every inference variant")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch-224", type=int, default=8)
    p.add_argument("--batch-512", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny models, one round")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--out", default=f"benchmark-{group}.json")
    args = p.parse_args()
    cfg = BenchConfig(groups=(group,), archs=tuple(args.archs), device=args.device, dtype=args.dtype,
                      compile=args.compile, rounds=args.rounds, warmup=args.warmup, batch_224=args.batch_224,
                      batch_512=args.batch_512, quick=args.quick, memory=not args.no_memory,
                      runtimes=tuple(args.runtime), precisions=tuple(args.precision), cache_dir=args.cache_dir)
    run_benchmark(cfg, out=args.out, markdown=True)
    return 0
