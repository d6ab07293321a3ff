"""Synthetic long-wave infrared street scenes with exact labels, for demos, smoke tests and tiny training runs.

:func:`make_scene` paints a frame the way an uncooled LWIR camera sees a street: a cool sky at the top that
warms toward the horizon, buildings with window grids, textured mid-cool vegetation, ground at ambient
temperature, a warm road drawn in perspective, cars (warm bodies, hot engine and tyres) and people (the
brightest objects: a body and a head). The sensor adds blur, vignetting, Gaussian noise and fixed-pattern
column noise. Classes (:data:`SYNTHETIC_CLASSES`) differ in mean temperature and texture, so they are learnable.

Everything is numpy (PIL only upsamples the texture noise); a 128x160 scene takes a few milliseconds and the same
generator state always gives the same scene.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .datasets import Pipeline, SegDataset

__all__ = ["SYNTHETIC_CLASSES", "SYNTHETIC_PALETTE", "SyntheticThermalDataset", "make_scene", "scene_batch",
           "write_synthetic_dataset"]

SYNTHETIC_CLASSES = ("background", "sky", "road", "vegetation", "building", "person", "car")
"""Class names of the synthetic scenes; ``background`` is the bare ground beside the road."""
SYNTHETIC_PALETTE = ((0, 0, 0), (70, 130, 180), (128, 64, 128), (107, 142, 35), (150, 100, 60), (220, 20, 60),
                     (0, 0, 142))  # fmt: skip
"""One RGB colour per synthetic class (background black)."""

BACKGROUND, SKY, ROAD, VEGETATION, BUILDING, PERSON, CAR = range(7)


def _noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth value noise, roughly unit variance, with features about ``cell`` pixels wide: float32 (H, W)."""
    coarse = rng.standard_normal((max(int(height / cell), 1) + 2, max(int(width / cell), 1) + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))


def _blur(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur with edge padding."""
    p = np.pad(image, 1, mode="edge")
    rows = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4  # (H, W + 2)
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) / 4  # (H, W)


@dataclass
class _Canvas:
    """One scene being painted: temperatures, labels, pixel coordinates and the scene's random generator."""

    rng: np.random.Generator
    height: int
    width: int

    def __post_init__(self) -> None:
        self.yy, self.xx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)  # (H, W) each
        self.temp = np.empty((self.height, self.width), np.float32)
        self.label = np.zeros((self.height, self.width), np.uint8)
        self.horizon = int(self.height * self.rng.uniform(0.3, 0.45))

    def noise(self, cell: float, height: int | None = None) -> np.ndarray:
        """Value noise over the frame (or ``height`` rows of it)."""
        return _noise(self.rng, self.height if height is None else height, self.width, cell)

    def paint(self, mask: np.ndarray, value: np.ndarray | float, cls: int) -> None:
        """Sets temperature ``value`` (a map or a number) and label ``cls`` under ``mask``."""
        self.temp[mask] = value[mask] if isinstance(value, np.ndarray) else value
        self.label[mask] = cls


def _sky_and_ground(c: _Canvas) -> None:
    sky = 32 + 28 * (c.yy / max(c.horizon, 1)) ** 2 + 4 * c.noise(c.width / 4)  # cold, warming to the horizon
    c.paint(c.yy < c.horizon, sky, SKY)
    ground = 100 + 7 * c.noise(10) + 4 * c.noise(2)
    c.paint(c.yy >= c.horizon, ground, BACKGROUND)


def _buildings(c: _Canvas) -> None:
    """0-3 buildings standing on the horizon, windows in a grid (warmer or colder than the wall)."""
    rng, yy, xx = c.rng, c.yy, c.xx
    for _ in range(rng.integers(0, 4)):
        x0, bw = rng.uniform(-0.1, 0.9) * c.width, rng.uniform(0.1, 0.3) * c.width
        top = c.horizon - rng.uniform(0.12, 0.3) * c.height
        wall = (xx >= x0) & (xx < x0 + bw) & (yy >= top) & (yy < c.horizon + 0.04 * c.height)
        step = max(c.height / 16, 3.0)
        windows = wall & ((yy - top) % step > step / 2) & ((xx - x0) % step > step / 2) & (yy > top + step / 2)
        c.paint(wall, 118 + rng.uniform(0, 12) + 2 * c.noise(4), BUILDING)
        c.temp[windows] += rng.choice([-18.0, 18.0])


def _trees(c: _Canvas) -> None:
    """Usually a tree line with gaps; leaves make a strong fine texture."""
    rng = c.rng
    if rng.random() >= 0.85:
        return
    edge = c.noise(c.width / 12, height=1)[0]  # (W,)
    top = c.horizon - (rng.uniform(0.05, 0.18) + 0.05 * edge) * c.height
    bottom = c.horizon + rng.uniform(0.03, 0.12) * c.height
    present = c.noise(c.width / 5, height=1)[0] > rng.uniform(-0.8, 0.3)
    trees = (c.yy >= top[None]) & (c.yy < bottom) & present[None]
    c.paint(trees, 76 + 10 * c.noise(3) + 7 * c.noise(1), VEGETATION)


def _road(c: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """A warm road in perspective with cooler lane marks; returns its left and right edges (H, W)."""
    rng, yy, xx, width = c.rng, c.yy, c.xx, c.width
    vanish = rng.uniform(0.35, 0.65) * width
    half_bottom = rng.uniform(0.25, 0.45) * width
    centre_bottom = rng.uniform(0.35, 0.65) * width
    t = np.clip((yy - c.horizon) / max(c.height - c.horizon, 1), 0, 1)  # 0 at the horizon, 1 at the bottom row
    left = vanish * (1 - t) + (centre_bottom - half_bottom) * t - 0.02 * width
    right = vanish * (1 - t) + (centre_bottom + half_bottom) * t + 0.02 * width
    road = (yy >= c.horizon) & (xx >= left) & (xx <= right)
    c.paint(road, 148 + 10 * t + 3 * c.noise(6), ROAD)
    centre = (left + right) / 2
    dashes = road & (np.abs(xx - centre) <= 0.5 + 1.5 * t) & ((yy * (1 + 3 * t)) % 16 < 8)
    c.temp[dashes] -= 20  # painted lane marks emit less
    return left, right


def _car(c: _Canvas, foot: float, cx: float, size: float) -> None:
    """Warm body, cold glass, hot engine at one end, hot tyres."""
    rng, yy, xx = c.rng, c.yy, c.xx
    h, w = size, 2.2 * size
    body = (yy >= foot - 0.65 * h) & (yy <= foot - 0.15 * h) & (np.abs(xx - cx) <= w / 2)
    cabin = (yy >= foot - h) & (yy < foot - 0.65 * h) & (np.abs(xx - cx) <= 0.32 * w)
    c.paint(body | cabin, 150 + rng.uniform(0, 20), CAR)
    c.temp[cabin] -= 25  # glass reflects the cold sky
    front = cx + (w / 2 if rng.random() < 0.5 else -w / 2)
    c.temp[body & (np.abs(xx - front) <= 0.3 * w)] = 205 + rng.uniform(0, 25)  # engine
    for wx in (cx - 0.3 * w, cx + 0.3 * w):
        wheel = (yy - (foot - 0.2 * h)) ** 2 + (xx - wx) ** 2 <= (0.2 * h) ** 2
        c.paint(wheel, 190 + rng.uniform(0, 20), CAR)


def _person(c: _Canvas, foot: float, cx: float, size: float) -> None:
    """The brightest objects: an elliptic body and a hotter head."""
    yy, xx = c.yy, c.xx
    h, w = size, 0.32 * size
    body = ((yy - (foot - 0.42 * h)) / (0.42 * h)) ** 2 + ((xx - cx) / (0.5 * w)) ** 2 <= 1
    head = (yy - (foot - 0.88 * h)) ** 2 + (xx - cx) ** 2 <= (0.11 * h) ** 2 + 0.5
    c.paint(body, 200 + c.rng.uniform(0, 15), PERSON)
    c.paint(head, 222 + c.rng.uniform(0, 15), PERSON)


def _objects(c: _Canvas, left: np.ndarray, right: np.ndarray) -> None:
    """0-3 cars on the road and 0-3 people anywhere below the horizon, drawn far to near."""
    rng, height = c.rng, c.height
    objects = []
    for kind in ["car"] * int(rng.integers(0, 4)) + ["person"] * int(rng.integers(0, 4)):
        s = rng.uniform(0.15, 1.0)
        foot = c.horizon + s * (height - c.horizon)
        row = min(int(foot), height - 1)
        lo, hi = (left[row, 0], right[row, 0]) if kind == "car" else (0, c.width)
        objects.append((foot, kind, rng.uniform(lo, max(hi, lo + 1)), s))
    for foot, kind, cx, s in sorted(objects):
        if kind == "car":
            _car(c, foot, cx, max(0.28 * height * s, 4))
        else:
            _person(c, foot, cx, max(0.5 * height * s, 6))


def _sensor(c: _Canvas) -> np.ndarray:
    """Optics blur, ambient offset, vignetting, Gaussian and column noise -> uint8 (H, W)."""
    rng, height, width = c.rng, c.height, c.width
    temp = _blur(_blur(c.temp)) + rng.uniform(-12, 12)  # optics + scene-wide ambient offset
    r2 = ((c.yy - height / 2) / height) ** 2 + ((c.xx - width / 2) / width) ** 2
    temp *= 1 - rng.uniform(0.1, 0.4) * r2  # vignetting
    temp += rng.normal(0, rng.uniform(1.5, 4), temp.shape) + rng.normal(0, rng.uniform(1, 3), (1, width))
    return np.clip(np.rint(temp), 0, 255).astype(np.uint8)


def make_scene(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint one synthetic LWIR street scene.

    Args:
        height: Frame height in pixels (at least 32 recommended).
        width: Frame width in pixels.
        rng: Source of randomness; the same state gives the same scene.

    Returns:
        The gray frame, uint8 ``(H, W)``, and its class indices, uint8 ``(H, W)`` (see :data:`SYNTHETIC_CLASSES`).
    """
    canvas = _Canvas(rng, height, width)
    _sky_and_ground(canvas)
    _buildings(canvas)
    _trees(canvas)
    _objects(canvas, *_road(canvas))
    return _sensor(canvas), canvas.label


def scene_batch(rng: np.random.Generator, n: int, size: int, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` square scenes as a model batch: normalised gray copied to ``channels`` (n, C, size, size) and class
    indices (n, size, size) int64 (the fine-tuning normalisation, :func:`~unip_hub.data.transforms.normalize`)."""
    from .transforms import normalize

    scenes = [make_scene(size, size, rng) for _ in range(n)]
    x = torch.stack([normalize(gray, channels=channels) for gray, _ in scenes])  # (n, C, size, size)
    return x, torch.from_numpy(np.stack([label for _, label in scenes])).long()


class SyntheticThermalDataset(SegDataset):
    """``n`` synthetic scenes generated on the fly; item ``i`` is always the same scene for a given seed.

    Args:
        n: Number of scenes.
        size: Scene ``(height, width)``.
        seed: Seed of the scenes and of the pipeline's augmentation.
        pipeline: See :class:`~unip_hub.data.datasets.SegDataset`.
    """

    CLASSES = SYNTHETIC_CLASSES
    PALETTE = SYNTHETIC_PALETTE

    def __init__(
        self, n: int, size: tuple[int, int] = (128, 160), seed: int = 0, pipeline: Pipeline | None = None
    ) -> None:
        super().__init__([], pipeline, seed)
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def scene(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw scene ``index``: gray uint8 ``(H, W)`` and label uint8 ``(H, W)``."""
        if not 0 <= index < self.n:
            raise IndexError(f"scene {index} out of range for {self.n} scenes")
        return make_scene(*self.size, np.random.default_rng((self.seed, index)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(*self.scene(index), index)


def _save_label(label: np.ndarray, path: Path) -> None:
    image = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label).tobytes())
    image.putpalette([c for colour in SYNTHETIC_PALETTE for c in colour])
    image.save(path)


def write_synthetic_dataset(
    root: str | os.PathLike, n_train: int = 64, n_test: int = 16, size: tuple[int, int] = (128, 160), seed: int = 0
) -> Path:
    """Write synthetic scenes as a folder dataset for :class:`~unip_hub.data.datasets.FolderSegDataset`.

    Layout: ``<root>/images/{train,test}/00000.png`` (8-bit gray), ``<root>/labels/{train,test}/00000.png``
    (palette PNGs of class indices) and ``<root>/classes.txt`` (one class name per line).

    Args:
        root: Output folder (created if needed).
        n_train: Number of training scenes.
        n_test: Number of test scenes.
        size: Scene ``(height, width)``.
        seed: Seed; training and test scenes come from different streams.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    root = Path(root)
    for split_index, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            gray, label = make_scene(*size, np.random.default_rng((seed, split_index, i)))
            Image.fromarray(gray).save(root / "images" / split / f"{i:05d}.png")
            _save_label(label, root / "labels" / split / f"{i:05d}.png")
    (root / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES) + "\n")
    return root
