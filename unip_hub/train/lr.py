"""Learning-rate schedules as pure functions of the iteration (MAE's ``lr_sched``, mmcv's ``PolyLrUpdaterHook``).

All return the base learning rate at an iteration; the per-group ``lr_scale`` of layer-wise decay is applied by the
caller (:func:`set_lr`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def poly_lr(it: float, total: int, base: float, warmup: int, warmup_ratio: float = 1e-6, power: float = 1.0,
            min_lr: float = 0.0) -> float:
    """Polynomial decay to ``min_lr`` with mmcv's linear warm-up (the UNIP / BEiT segmentation schedule).

    The regular value is ``(base - min_lr) * (1 - it / total) ** power + min_lr``; during the first ``warmup``
    iterations it is multiplied by a factor growing linearly from ``warmup_ratio`` (at ``it = 0``) to 1.

    Args:
        it: Current iteration, 0-based.
        total: Total iterations; the rate reaches ``min_lr`` at ``it = total``.
        base: Peak learning rate.
        warmup: Warm-up iterations (0 for none).
        warmup_ratio: Starting fraction of the regular rate.
        power: Exponent of the decay (1 = linear).
        min_lr: Final learning rate.
    """
    if total <= 0:
        raise ValueError(f"total iterations must be positive, got {total}")
    progress = min(max(it, 0) / total, 1.0)
    lr = (base - min_lr) * (1.0 - progress) ** power + min_lr
    if it < warmup:
        k = (1.0 - it / warmup) * (1.0 - warmup_ratio)
        lr = lr * (1.0 - k)
    return lr


def cosine_lr(it: float, total: int, base: float, warmup: int, min_lr: float = 0.0) -> float:
    """Linear warm-up from 0 then half-cycle cosine to ``min_lr`` (the MAE / NMI-HAD pre-training schedule).

    Args:
        it: Current iteration (or fractional epoch), 0-based.
        total: Length of the schedule in the same unit.
        base: Peak learning rate, reached at ``it = warmup``.
        warmup: Warm-up length.
        min_lr: Final learning rate.
    """
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    if it < warmup:
        return base * it / warmup
    span = max(total - warmup, 1e-12)
    progress = min((it - warmup) / span, 1.0)
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def multistep_lr(it: float, total: int, base: float, warmup: int, steps: Sequence[float] = (2 / 3, 11 / 12),
                 gamma: float = 0.1, warmup_factor: float = 0.001) -> float:
    """Step decay with a linear warm-up (detectron2's ``MultiStepParamScheduler`` + ``WarmupParamScheduler``, the
    ViTDet detection schedule).

    Args:
        it: Current iteration, 0-based.
        total: Total iterations.
        base: Peak learning rate.
        warmup: Warm-up iterations: the rate grows linearly from ``warmup_factor * base`` at ``it = 0``.
        steps: Fractions of ``total`` at which the rate is multiplied by ``gamma`` (the reference: iterations
            35,448 and 48,741 of 53,172).
        gamma: Factor of each step.
        warmup_factor: Starting fraction of the rate.
    """
    if total <= 0:
        raise ValueError(f"total iterations must be positive, got {total}")
    lr = base * gamma ** sum(it >= round(f * total) for f in steps)
    if it < warmup:
        alpha = it / warmup
        lr *= warmup_factor * (1 - alpha) + alpha
    return lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Sets every group's rate to ``lr`` times its ``lr_scale`` (1 when the group has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
