"""``unip demo``: fine-tune UNIP-T (LL-FPN + UPerNet) on synthetic thermal scenes in minutes, with no downloads.

Writes a synthetic street-scene dataset (:mod:`unip_hub.data.synthetic`), fine-tunes with the paper's recipe on
small crops (the schedule is sized to a time budget by timing a few steps first), evaluates on held-out scenes,
and writes overlays of test scenes and a loss / mIoU curve plot. With ``weights`` (a released UNIP-T file or tag)
the backbone starts from them instead of random initialisation.

Outputs under ``out_dir``: ``data/`` (the scenes), ``run/`` (checkpoints, ``log.csv``, ``eval.json``, ``tb/``),
``overlays/scene_*.png`` (thermal | prediction | ground truth) and ``curves.png``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unip_hub.train.finetune import FinetuneConfig, FinetuneResult, build_dataset, build_segmenter, finetune
from unip_hub.utils.atomic import atomic_path

SCENE_SIZE = (128, 160)
QUICK_SCENE_SIZE = (64, 80)


@dataclass
class DemoResult:
    """What the demo produced."""

    out_dir: Path
    run: FinetuneResult
    baseline_mIoU: float  # predicting the most frequent class everywhere
    overlays: list[Path]
    curves: Path | None


def demo_config(out_dir: Path, iterations: int, weights: str | None = None, quick: bool = False, seed: int = 0,
                progress: bool = True) -> FinetuneConfig:
    """The demo's run settings: UNIP-T on 128x128 crops (64x64 with ``quick``), the paper's optimiser."""
    return FinetuneConfig(
        dataset="folder", data_root=str(out_dir / "data"), arch="unip_vit_tiny", weights=weights,
        iterations=iterations, warmup=max(iterations // 10, 1), batch_size=4 if quick else 8,
        lr=4e-4, layer_decay=0.85, crop_size=64, eval_interval=-(-iterations // (2 if quick else 4)),
        eval_mode="slide", out_dir=str(out_dir / "run"), seed=seed, num_workers=0,
        log_interval=max(min(10, iterations // 4), 1), progress=progress,
    )


def seconds_per_iteration(cfg: FinetuneConfig, steps: int = 3) -> float:
    """Times ``steps`` training steps (after one warm-up step) of a throw-away copy of the run's model."""
    from unip_hub.train.core import LossScaler, StepContext
    from unip_hub.train.engine import SegLoss, SegTrainWrapper
    from unip_hub.train.optim import param_groups_lrd

    cfg = cfg.resolved()
    state = torch.get_rng_state()
    train = build_dataset(cfg, "train")
    seg = build_segmenter(cfg, list(train.CLASSES))
    opt = torch.optim.AdamW(param_groups_lrd(seg), lr=cfg.lr, fused=True)
    cpu = torch.device("cpu")
    ctx = StepContext(SegTrainWrapper(seg).train(), opt, LossScaler(cpu), cpu)
    loss = SegLoss(cfg.aux_weight)
    batch = [train[i] for i in range(cfg.batch_size)]
    images, labels = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])  # (B, 3, h, w), (B, h, w)
    torch.set_rng_state(state)  # building the model and the batch drew numbers too
    return time_train_steps(ctx, loss, (images, labels), steps)


def _colorize(label: np.ndarray, palette: list[list[int]]) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    return lut[label]  # (H, W) -> (H, W, 3)


def write_overlays(seg: Any, dataset: Any, out_dir: Path, count: int = 4, mode: str = "slide",
                   crop_size: int = 64, scale: tuple[int, int] | None = None,
                   palette: Any = None) -> list[Path]:
    """PNG per test scene: the thermal image, the prediction over it, and the ground truth over it, side by side."""
    from PIL import Image

    from unip_hub.data.readers import read_label
    from unip_hub.inference import Predictor

    out_dir.mkdir(parents=True, exist_ok=True)
    palette = [list(c) for c in (palette or seg.palette or dataset.PALETTE)]
    paths = []
    for i in range(min(count, len(dataset))):
        image_path, label_path = dataset.samples[i]
        gray = dataset.read_image(image_path)  # (H, W) uint8
        label = read_label(label_path)
        pred = Predictor(seg).predict(gray, mode=mode, crop_size=crop_size, stride=round(crop_size * 2 / 3),
                                      scale=scale).numpy()
        rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
        panels = [rgb, 0.45 * rgb + 0.55 * _colorize(pred.astype(np.uint8), palette),
                  0.45 * rgb + 0.55 * _colorize(label, palette)]
        sheet = np.concatenate([np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=255) for p in panels], axis=1)
        path = out_dir / f"scene_{i:02d}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(np.clip(sheet, 0, 255).astype(np.uint8)).save(tmp)
        paths.append(path)
    return paths


def plot_curves(log_csv: Path, path: Path, metrics: Sequence[tuple[str, str]], loss_label: str, title: str,
                reference: tuple[float, str] | None = None) -> Path | None:
    """``curves.png`` of a demo run: training loss, and each evaluation ``metrics`` column (``(column, label)``,
    0..1, drawn in %) against the iteration, with an optional ``reference`` line (``(value, label)``: what chance
    or the majority class scores). ``None`` if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no curves.png (pip install 'unip[train]')", file=sys.stderr)
        return None
    from unip_hub.train.logger import read_log

    rows = read_log(log_csv)
    train = [(int(r["iteration"]), float(r["loss"])) for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(*zip(*train), color="tab:blue")
    ax1.set(xlabel="iteration", ylabel=loss_label, title="training loss")
    for (column, label), colour, marker in zip(metrics, ("tab:green", "tab:olive", "tab:cyan"), "os^"):
        ax2.plot([int(r["iteration"]) for r in evals], [100 * float(r[column]) for r in evals], marker=marker,
                 color=colour, label=label)
    if reference is not None:
        ax2.axhline(100 * reference[0], color="gray", linestyle="--", label=reference[1])
    ax2.set(xlabel="iteration", ylabel="%", title=title, ylim=(0, 100))
    ax2.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def time_train_steps(ctx: Any, loss: Any, batch: Any, steps: int) -> float:
    """Seconds per training step of ``ctx`` on ``batch`` (one warm-up step first); the global torch rng state is
    left as it was, so the run that follows draws the same numbers."""
    from unip_hub.train.core import train_step

    state = torch.get_rng_state()
    train_step(ctx, loss, batch, 0)
    tic = time.perf_counter()
    for step in range(steps):
        train_step(ctx, loss, batch, step)
    torch.set_rng_state(state)
    return (time.perf_counter() - tic) / steps


def majority_baseline(dataset: Any, num_classes: int) -> float:
    """mIoU of predicting the training-free most frequent test class everywhere (the bar to clear)."""
    from unip_hub.data.readers import read_label
    from unip_hub.metrics import SegMetric

    labels = [read_label(p) for _, p in dataset.samples]
    counts = np.bincount(np.concatenate([lb.ravel() for lb in labels]), minlength=num_classes)[:num_classes]
    metric = SegMetric(num_classes)
    for lb in labels:
        metric.update(np.full_like(lb, int(counts.argmax())), lb)
    return metric.compute()["mIoU"]


def run_demo(out_dir: str | Path = "unip-demo", minutes: float = 3.5, iterations: int | None = None,
             weights: str | None = None, quick: bool = False, seed: int = 0, progress: bool = True) -> DemoResult:
    """Writes synthetic scenes, fine-tunes UNIP-T on them, evaluates, and writes overlays and curves.

    Args:
        out_dir: Output folder (created).
        minutes: Training time budget; the iteration count is sized to it from a short timing run.
        iterations: Fixed iteration count instead of ``minutes``.
        weights: Pre-trained UNIP-T backbone (registry tag or file); random initialisation when None.
        quick: Tiny version for tests (64x80 scenes, 64x64 crops, batch 4, 16 scenes).
        seed: Seed of the scenes and the run.
        progress: Show progress bars.
    """
    from unip_hub.data.synthetic import SYNTHETIC_PALETTE, write_synthetic_dataset
    from unip_hub.hub.segmenters import load_segmenter
    from unip_hub.metrics import format_table

    out = Path(out_dir)
    size = QUICK_SCENE_SIZE if quick else SCENE_SIZE
    n_train, n_test = (16, 4) if quick else (320, 24)
    write_synthetic_dataset(out / "data", n_train=n_train, n_test=n_test, size=size, seed=seed)
    if iterations is None:
        probe = demo_config(out, 100, weights, quick, seed, progress)
        per_it = seconds_per_iteration(probe)
        iterations = max(int(minutes * 60 * 0.92 / per_it), 20)  # ~8 % of the budget for evaluation
        print(f"{per_it:.2f} s per iteration here: training {iterations} iterations (~{minutes:g} min)",
              file=sys.stderr)
    cfg = demo_config(out, iterations, weights, quick, seed, progress)
    run = finetune(cfg)

    test = build_dataset(cfg.resolved(), "test")  # the scenes of run/eval.json
    baseline = majority_baseline(test, len(test.CLASSES))
    seg = load_segmenter(out / "run" / "best.pth").eval()
    resolved = cfg.resolved()
    overlays = write_overlays(seg, test, out / "overlays", 4, resolved.eval_mode, resolved.crop_size, resolved.scale,
                              SYNTHETIC_PALETTE)
    curves = plot_curves(out / "run" / "log.csv", out / "curves.png", [("mIoU", "UNIP-T")], "loss (decode + 0.4 aux)",
                         "held-out mIoU", (baseline, "majority class"))
    if run.final is not None:
        print(format_table(run.final, list(test.CLASSES)))
    print(f"\nbest mIoU {100 * run.best_mIoU:.2f} at iteration {run.best_iteration}/{run.iteration} "
          f"(majority-class baseline {100 * baseline:.2f})")
    print(f"outputs in {out}/: run/best.pth, run/log.csv, run/eval.json, overlays/ ({len(overlays)} PNGs)"
          + (", curves.png" if curves else ""))
    return DemoResult(out, run, baseline, overlays, curves)
