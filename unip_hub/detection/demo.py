# exports: DetectionDemoResult, run_detection_demo
"""``unip demo --task detection``: fine-tune a UNIP-T Faster R-CNN on synthetic thermal street scenes in minutes,
with no downloads.

The scenes are :mod:`unip_hub.data.synthetic`'s (people and cars as their connected blobs, boxed by
:func:`unip_hub.data.instances.instances_from_label`); the run is :func:`unip_hub.detection.train.train_detector`
(the detection recipe's optimiser and schedule, small images, a short run sized to a time budget by timing a few
steps first); the evaluation is COCO AP on held-out scenes, against the AP50 of random boxes (the chance bar).

Outputs under ``out_dir``: ``run/`` (checkpoints, ``log.csv``, ``eval.json``, ``tb/``), ``overlays/scene_*.png``
(prediction | ground truth) and ``curves.png`` (training loss, held-out AP50 and AP).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unip_hub.detection.train import DetectionLoss, DetectionResult, build_detector, metrics_table, train_detector
from unip_hub.detection.train_config import DetectionConfig, detection_dataset
from unip_hub.utils.atomic import atomic_path

SCENE_SIZE = (128, 160)
QUICK_SCENE_SIZE = (64, 80)
_LIGHT_HEADS = {"rpn_pre_nms_top_n_train": 600, "rpn_post_nms_top_n_train": 300, "rpn_pre_nms_top_n_test": 300,
                "rpn_post_nms_top_n_test": 150, "box_batch_size_per_image": 128}


@dataclass
class DetectionDemoResult:
    """What the detection demo produced."""

    out_dir: Path
    run: DetectionResult
    final: dict[str, Any]  # COCO metrics of best.pth on the held-out scenes (0..1)
    chance_AP50: float  # AP50 of random boxes
    overlays: list[Path]
    curves: Path | None
    seconds: float


def demo_config(out_dir: Path, iterations: int, weights: str | None = None, quick: bool = False, seed: int = 0,
                progress: bool = True) -> DetectionConfig:
    """The demo's run: UNIP-T (a 2-block 64-wide ViT with ``quick``), a 64-channel FPN and a light RPN / RoI
    sampling, the scenes at their own scale (160 px crops, flip and photometric jitter; measured: with scale
    jitter 0.75-1.25 the AP50 after 150 iterations is half as high), batch 2, the recipe's AdamW and step schedule at lr
    3e-4 with the segmentation demo's layer decay 0.85 (0.7 would all but freeze the first blocks of a randomly
    initialised backbone in a run this short)."""
    size = QUICK_SCENE_SIZE if quick else SCENE_SIZE
    tiny = {"depth": 2, "embed_dim": 64, "num_heads": 2} if quick else {}
    return DetectionConfig(
        data="synthetic", synthetic_train=16 if quick else 320, synthetic_test=4 if quick else 24,
        synthetic_size=size, arch="unip_vit_tiny", weights=weights, head="faster_rcnn", scale_range=(1.0, 1.0),
        iterations=iterations, warmup=max(iterations // 10, 1), batch_size=2, lr=3e-4, layer_decay=0.85,
        eval_interval=-(-iterations // (2 if quick else 4)), eval_batch_size=4, out_dir=str(out_dir / "run"),
        seed=seed, num_workers=0, log_interval=max(min(10, iterations // 4), 1), progress=progress,
        model_kwargs={"out_channels": 32 if quick else 64, **tiny}, detector_kwargs=dict(_LIGHT_HEADS))


def seconds_per_iteration(cfg: DetectionConfig, steps: int = 2) -> float:
    """Times ``steps`` training steps (after one warm-up step) of a throw-away copy of the run's model."""
    from unip_hub.detection.checkpoint import detector_param_groups
    from unip_hub.detection.datasets import detection_collate
    from unip_hub.train.core import LossScaler, StepContext
    from unip_hub.train.demo import time_train_steps

    state = torch.get_rng_state()
    cfg = cfg.resolved()
    train = detection_dataset(cfg, "train", cfg.size, cfg.scale_range)
    model = build_detector(cfg, list(train.class_names))
    opt = torch.optim.AdamW(detector_param_groups(model, cfg.lr, cfg.weight_decay, cfg.layer_decay), lr=cfg.lr)
    cpu = torch.device("cpu")
    ctx = StepContext(model.train(), opt, LossScaler(cpu), cpu)
    batch = detection_collate([train[i] for i in range(cfg.batch_size)])
    torch.set_rng_state(state)  # building the model and the batch drew numbers too
    return time_train_steps(ctx, DetectionLoss(), batch, steps)


def chance_ap50(test: Any, train: Any, per_image: int = 20, seed: int = 0) -> float:
    """AP50 of random detections: ``per_image`` boxes per test image with the training boxes' sizes at uniform
    positions, random classes and scores (the bar a detector must clear)."""
    from unip_hub.detection.evaluate import coco_evaluate, results_json

    rng = np.random.default_rng(seed)
    sizes = np.concatenate([r.boxes[:, 2:] - r.boxes[:, :2] for r in train.records])  # (M, 2) w, h
    outputs = []
    for record in test.records:
        wh = sizes[rng.integers(len(sizes), size=per_image)]
        xy = rng.uniform(0, 1, (per_image, 2)) * np.maximum([record.width, record.height] - wh, 0)
        outputs.append({"boxes": np.concatenate([xy, xy + wh], 1), "scores": rng.uniform(size=per_image),
                        "labels": rng.integers(test.num_classes, size=per_image)})
    results = results_json(test.image_ids, outputs, test.category_ids)
    return float(coco_evaluate(test.coco_ground_truth(), results)["AP50"])


def write_overlays(model: Any, test: Any, out_dir: Path, count: int = 4, score_thresh: float = 0.5,
                   zoom: int = 2) -> list[Path]:
    """PNG per test scene: the detections (score >= ``score_thresh``) | the ground-truth boxes, side by side,
    enlarged ``zoom`` times (pixels repeated) so that the labels fit."""
    from PIL import Image

    from unip_hub.detection.outputs import class_colours, detection_rows, render_detections
    from unip_hub.detection.predict import DetectionPredictor

    predictor = DetectionPredictor(model, score_thresh=score_thresh)
    colours = class_colours(model, model.num_classes)
    names = predictor.class_names
    paths = []
    for i in range(min(count, len(test))):
        gray = test.read_gray(i)  # (H, W) uint8
        record = test.records[i]
        truth = {"boxes": record.boxes, "scores": np.ones(len(record.boxes)), "labels": record.labels}
        big = np.kron(gray, np.ones((zoom, zoom), np.uint8))  # (zoom H, zoom W)
        panels = []
        for found, scored in ((predictor.predict(gray), True), (truth, False)):
            rows = [{**r, **{k: zoom * r[k] for k in ("x0", "y0", "x1", "y1")}, "score": r["score"] if scored
                     else None} for r in detection_rows(found, names)]
            panels.append(render_detections(None, big, rows, colours, names, line_width=zoom))
        sheet = np.concatenate([np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=255) for p in panels], axis=1)
        path = out_dir / f"scene_{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(sheet).save(tmp, format="PNG")
        paths.append(path)
    return paths


def run_detection_demo(out_dir: str | Path = "unip-demo", minutes: float = 3.5, iterations: int | None = None,
                       weights: str | None = None, quick: bool = False, seed: int = 0,
                       progress: bool = True) -> DetectionDemoResult:
    """Fine-tunes a UNIP-T Faster R-CNN on synthetic scenes, evaluates it, writes overlays and curves.

    Args:
        out_dir: Output folder (created).
        minutes: Training time budget; the iteration count is sized to it from a short timing run.
        iterations: Fixed iteration count instead of ``minutes``.
        weights: Pre-trained UNIP-T backbone (registry tag or file); random initialisation when None.
        quick: Seconds-long version for tests (a 2-block ViT, 64x80 scenes, 16 of them).
        seed: Seed of the scenes and the run.
        progress: Show progress bars.
    """
    from unip_hub.detection.checkpoint import load_detector
    from unip_hub.detection.train import evaluate_detector

    tic = time.perf_counter()
    out = Path(out_dir)
    if iterations is None:
        per_it = seconds_per_iteration(demo_config(out, 100, weights, quick, seed, progress))
        iterations = max(int(minutes * 60 * 0.85 / per_it), 20)  # ~15 % of the budget for evaluation
        print(f"{per_it:.2f} s per iteration here: training {iterations} iterations (~{minutes:g} min)",
              file=sys.stderr)
    cfg = demo_config(out, iterations, weights, quick, seed, progress)
    run = train_detector(cfg)
    resolved = cfg.resolved()
    test = detection_dataset(resolved, "val")
    chance = chance_ap50(test, detection_dataset(resolved, "train", resolved.size, resolved.scale_range), seed=seed)
    best = load_detector(out / "run" / "best.pth")
    final = evaluate_detector(best, test, resolved.eval_batch_size)
    overlays = write_overlays(best, test, out / "overlays")
    from unip_hub.train.demo import plot_curves

    curves = plot_curves(out / "run" / "log.csv", out / "curves.png", [("AP50", "AP50"), ("AP", "AP (0.5:0.95)")],
                         "loss (RPN + box head)", "held-out COCO AP", (chance, "random boxes (AP50)"))
    seconds = time.perf_counter() - tic
    print(metrics_table(final))
    print(f"\nbest.pth (iteration {run.best_iteration}/{run.iteration}): AP50 {100 * final['AP50']:.2f}, AP "
          f"{100 * final['AP']:.2f} on {len(test)} held-out scenes (random boxes: AP50 {100 * chance:.2f}); "
          f"{seconds / 60:.1f} min")
    print(f"outputs in {out}/: run/best.pth, run/log.csv, run/eval.json, overlays/ ({len(overlays)} PNGs)"
          + (", curves.png" if curves else ""))
    return DetectionDemoResult(out, run, final, chance, overlays, curves, seconds)
