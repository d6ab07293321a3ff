"""Fine-tuning presets per dataset: class count and the paper's schedule (UNIP reference, section 4).

SODA 14,400 iterations with 1,500 warm-up, MFNet 9,800 / 1,000, SCUT-Seg 16,800 / 1,700 (batch 8); ``folder``
(any image/label folder pair) and ``synthetic`` (the generated scenes) get this package's defaults.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DATASETS", "PRESETS", "DatasetPreset", "get_preset"]


class DatasetPreset(NamedTuple):
    """Number of classes (None: read from the folder) and the iteration / warm-up counts of the recipe."""

    num_classes: int | None
    iterations: int
    warmup: int


PRESETS: dict[str, DatasetPreset] = {
    "soda": DatasetPreset(21, 14_400, 1_500),
    "mfnet": DatasetPreset(9, 9_800, 1_000),
    "scut": DatasetPreset(10, 16_800, 1_700),
    "folder": DatasetPreset(None, 8_000, 800),
    "synthetic": DatasetPreset(7, 1_000, 100),
}
"""Dataset name -> :class:`DatasetPreset`."""

DATASETS: tuple[str, ...] = tuple(PRESETS)
"""The dataset names ``unip finetune --dataset`` and ``unip eval --dataset`` accept."""


def get_preset(dataset: str) -> DatasetPreset:
    """The preset of ``dataset``.

    Raises:
        ValueError: ``dataset`` is not one of :data:`DATASETS` (the message lists them).
    """
    if dataset not in PRESETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    return PRESETS[dataset]
