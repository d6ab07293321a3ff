"""The same-run benchmark of ``unip segment --engine ray``: a Ray actor pool against the plain loop
(:func:`unip_hub.inference.outputs.segment_files`) on the same frames, the same model and the same settings.

``python -m unip_hub.benchmark.ray --frames 64 --workers 2`` prints one JSON object with the wall times and their
ratios (plain / ray: above 1 means Ray was faster). The plain loop runs twice, with torch's default intra-op threads
(what ``unip segment`` does) and with one thread (as each actor runs). Every run starts from the checkpoint on disk
and writes every output; the plain times include loading the model, the Ray time its actors' start-up and model
loading; the local Ray itself is started before any clock runs (a cluster is already up). Frames are synthetic
LWIR scenes (:mod:`unip_hub.data.synthetic`) and the model is UNIP-T with random weights unless a checkpoint is
given.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["compare_ray"]


def _frames(folder: Path, count: int, size: tuple[int, int], seed: int) -> list[Path]:
    """``count`` synthetic thermal scenes (8-bit PNGs) under ``folder``."""
    from unip_hub.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(folder, n_train=count, n_test=0, size=size, seed=seed)
    frames = sorted((folder / "images" / "train").glob("*.png"))
    if len(frames) != count:
        raise RuntimeError(f"expected {count} synthetic frames under {folder}, found {len(frames)}")
    return frames


def _checkpoint(path: Path, img_size: int) -> Path:
    """UNIP-T + LL-FPN + UPerNet with random weights, saved as ``unip segment`` reads it."""
    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
    from unip_hub.hub.segmenters import create_segmenter

    return save_segmenter_checkpoint(create_segmenter("unip_vit_tiny", num_classes=5, img_size=img_size).eval(), path)


def compare_ray(frames: int = 64, num_workers: int = 2, size: tuple[int, int] = (128, 160),
                model_path: str | None = None, work_dir: str | None = None, mode: str = "whole",
                seed: int = 0) -> dict[str, Any]:
    """Wall time of :func:`~unip_hub.scale.ray.segment_with_ray` with ``num_workers`` local actors against
    :func:`~unip_hub.inference.outputs.segment_files` on the same ``frames``, measured in one run.

    The plain loop runs twice: with torch's default intra-op threads (what ``unip segment`` does) and with one
    thread (as each actor runs); on a busy machine the threads of the first wait on each other.

    Returns:
        ``{"frames", "size", "workers", "cpus", "torch_threads", "plain_s", "plain_1_thread_s", "ray_s",
        "ratio" (plain / ray), "ratio_vs_1_thread", "ray_init_s"}``.
    """
    import os

    import ray
    import torch

    from unip_hub.hub.segmenters import load_segmenter
    from unip_hub.inference.outputs import SegmentSettings, segment_files
    from unip_hub.scale.ray import segment_with_ray

    root = Path(work_dir or tempfile.mkdtemp(prefix="unip-ray-bench-"))
    inputs = _frames(root / "frames", frames, size, seed)
    model = Path(model_path) if model_path else _checkpoint(root / "model.pth", max(size))
    settings = SegmentSettings(progress=False)
    tic = time.perf_counter()
    ray.init(num_cpus=num_workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_init = time.perf_counter() - tic
    threads = torch.get_num_threads()
    try:
        tic = time.perf_counter()
        plain = segment_files(load_segmenter(model, aux=False), inputs, root / "plain", settings, mode=mode)
        plain_s = time.perf_counter() - tic
        torch.set_num_threads(1)  # the second baseline: one thread, as each Ray actor runs
        tic = time.perf_counter()
        plain += segment_files(load_segmenter(model, aux=False), inputs, root / "plain1", settings, mode=mode)
        plain_one_s = time.perf_counter() - tic
        torch.set_num_threads(threads)
        tic = time.perf_counter()
        distributed = segment_with_ray(model, inputs, root / "ray", settings, num_workers, mode=mode)
        ray_s = time.perf_counter() - tic
    finally:
        torch.set_num_threads(threads)
        ray.shutdown()
    if any("error" in r for r in plain + distributed):
        raise RuntimeError(f"a benchmark frame failed: {[r for r in plain + distributed if 'error' in r][:1]}")
    if not work_dir:
        shutil.rmtree(root, ignore_errors=True)
    return {"frames": frames, "size": list(size), "workers": num_workers, "mode": mode, "cpus": os.cpu_count(),
            "torch_threads": threads, "plain_s": round(plain_s, 3), "plain_1_thread_s": round(plain_one_s, 3),
            "ray_s": round(ray_s, 3), "ratio": round(plain_s / ray_s, 3),
            "ratio_vs_1_thread": round(plain_one_s / ray_s, 3), "ray_init_s": round(ray_init, 3)}


def main(argv: list[str] | None = None) -> int:
    """``python -m unip_hub.benchmark.ray``: prints :func:`compare_ray`'s result as JSON."""
    p = argparse.ArgumentParser(prog="python -m unip_hub.benchmark.ray", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--size", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    p.add_argument("--model", default=None, help="segmenter checkpoint (default: UNIP-T with random weights)")
    p.add_argument("--mode", choices=("whole", "slide"), default="whole")
    args = p.parse_args(argv)
    print(json.dumps(compare_ray(args.frames, args.workers, tuple(args.size), args.model, mode=args.mode)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
