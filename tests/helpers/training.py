"""Shared helpers of the training tests: a tiny fine-tuning config and a free TCP port for gloo."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np

from unip_hub.train.finetune import FinetuneConfig

TINY_BACKBONE = {"depth": 2, "embed_dim": 64, "num_heads": 2}


def tiny_config(out_dir: str | Path, **overrides) -> FinetuneConfig:
    """A seconds-long run: 2-block 64-wide ViT, 64x64 crops of 64x80 synthetic scenes, batch 4, no workers."""
    cfg = dict(dataset="synthetic", arch="unip_vit_tiny", backbone_kwargs=dict(TINY_BACKBONE), iterations=12,
               warmup=2, batch_size=4, crop_size=64, lr=1e-3, eval_interval=6, log_interval=3, synthetic_train=16,
               synthetic_test=4, synthetic_size=(64, 80), num_workers=0, out_dir=str(out_dir), progress=False,
               tensorboard=False)
    cfg.update(overrides)
    return FinetuneConfig(**cfg)


def write_radiometric_dataset(root: str | Path, n_train: int = 4, n_test: int = 2, size: tuple[int, int] = (32, 48)
                              ) -> Path:
    """A folder dataset of synthetic scenes as temperatures: float32 degC (10 + 0.2 x gray), train as ``.npy``,
    test as float TIFF; labels as class-index PNGs; ``classes.txt``."""
    from PIL import Image

    from unip_hub.data.synthetic import SYNTHETIC_CLASSES, make_scene

    root = Path(root)
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            gray, label = make_scene(*size, np.random.default_rng((seed, i)))
            celsius = (10.0 + 0.2 * gray.astype(np.float32)).astype(np.float32)  # 10..61 degC
            if split == "train":
                np.save(root / "images" / split / f"{i:03d}.npy", celsius)
            else:
                Image.fromarray(celsius).save(root / "images" / split / f"{i:03d}.tiff")
            Image.fromarray(label).save(root / "labels" / split / f"{i:03d}.png")
    (root / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES) + "\n")
    return root


def majority_miou(labels: list[np.ndarray], num_classes: int) -> float:
    """mIoU of predicting the most frequent class everywhere, computed directly with numpy (the chance bar)."""
    flat = np.concatenate([lb.ravel() for lb in labels])
    major = np.bincount(flat, minlength=num_classes).argmax()
    present = [c for c in range(num_classes) if (flat == c).any() or c == major]
    ious = [((flat == c) & (major == c)).sum() / ((flat == c) | (major == c)).sum() for c in present]
    return float(np.mean(ious))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
