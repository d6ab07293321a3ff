"""The ``video`` benchmark group: end-to-end frames/s of ``unip segment`` on a 16-bit sequence against the
segmenter's own forward throughput on the same frames in the same run.

The sequence is generated here (synthetic LWIR street scenes of :mod:`unip_hub.data.synthetic`, drifting in time,
stored as Boson-style 16-bit counts, 0.01 K per count, in a folder of 16-bit PNGs in a temporary folder) and run
through :func:`unip_hub.inference.video.measure_video` with a randomly initialised segmenter (speed does not
depend on the weights). The figure is ``ratio`` = end-to-end / model-only; the target is >= 0.9 (decoding,
scaling, rendering, statistics and encoding hidden behind the model).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.benchmark.config import BenchConfig

__all__ = ["video_result", "write_sequence"]

_TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}
BOSON = (0.01, -273.15)  # celsius = 0.01 * count - 273.15


def write_sequence(folder: str | Path, frames: int, hw: tuple[int, int], seed: int = 0) -> Path:
    """Writes ``frames`` 16-bit PNGs (H, W) of one synthetic scene warming by 0.1 degC per frame, with noise.

    Gray level g of the scene becomes ``10 + 0.2 g`` degC (10..61 degC), stored as counts of 0.01 K.
    """
    from PIL import Image

    from unip_hub.data.synthetic import make_scene

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gray, _ = make_scene(*hw, rng)  # (H, W) uint8
    celsius = 10.0 + 0.2 * gray.astype(np.float64)
    for t in range(frames):
        scene = celsius + 0.1 * t + rng.normal(0.0, 0.05, celsius.shape)
        counts = np.round((scene - BOSON[1]) / BOSON[0]).astype(np.uint16)  # (H, W) uint16
        Image.fromarray(counts).save(folder / f"frame_{t:05d}.png")
    return folder


def _segmenter(cfg: BenchConfig) -> Any:
    import torch

    from unip_hub.hub.segmenters import create_segmenter

    torch.manual_seed(0)
    overrides = _TINY if cfg.quick else {}
    seg = create_segmenter(cfg.video_arch, num_classes=5 if cfg.quick else 21, img_size=64 if cfg.quick else 512,
                           aux=False, **overrides)
    return seg.eval().to(cfg.device)


def video_result(cfg: BenchConfig) -> dict[str, Any]:
    """The video group's result (same layout as the other groups' results; ``video`` holds the raw figures)."""
    from unip_hub.data.radiometric import Calibration
    from unip_hub.inference import Predictor
    from unip_hub.inference.video import VideoSettings, measure_video

    frames, hw = (4, (48, 64)) if cfg.quick else (cfg.video_frames, tuple(cfg.video_size))
    batch = 2 if cfg.quick else cfg.video_batch
    seg = _segmenter(cfg)
    predictor = Predictor(seg, calibration=Calibration(counts_to_celsius=BOSON))
    with tempfile.TemporaryDirectory(prefix="unip-bench-video-") as tmp:
        source = write_sequence(Path(tmp) / "sequence", frames, hw)
        figures = measure_video(predictor, source, Path(tmp) / "out",
                                settings=VideoSettings(batch_size=batch, progress=False),
                                repeats=1 if cfg.quick else cfg.video_repeats)
    arch = cfg.video_arch
    variants = {"end-to-end": _variant(figures["end_to_end_fps"]), "model-only": _variant(figures["model_fps"])}
    meta = {"arch": arch, "size": list(hw), "frames": frames, "batch_frames": batch, "input": "16-bit PNG counts",
            "mode": "whole", "model_fps_runs": figures["model_fps_runs"],
            "end_to_end_fps_runs": figures["end_to_end_fps_runs"], "repeats": int(figures["repeats"])}
    return {"name": f"video/{arch}@{hw[0]}x{hw[1]}", "group": "video", "batch": batch,
            "params_m": sum(p.numel() for p in seg.parameters()) / 1e6, "meta": meta,
            "checks": {"end_to_end_over_model": figures["ratio"]}, "peak_gflops_per_s": [],
            "variants": variants, "ratio": figures["ratio"], "video": figures}


def _variant(fps: float) -> dict[str, Any]:
    """One row's figures: only throughput and per-frame latency apply (no FLOPs, peak or memory)."""
    return {"gflops": None, "achieved_gflops_per_s": None, "fraction_of_peak": None, "latency_ms": 1e3 / fps,
            "throughput_img_per_s": fps, "peak_memory_mb": None, "latencies_ms": [1e3 / fps]}
