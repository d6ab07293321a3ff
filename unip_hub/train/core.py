"""The one training core of fine-tuning and distillation, after MAE's ``engine_pretrain.py`` and ``misc.py``.

* :func:`seed_everything`: one seeding function (Python, NumPy, torch).
* :func:`amp_dtype`: one mixed-precision choice (fp16 on CUDA by default, none on CPU, bf16 on request).
* :class:`LossScaler`: scaled backward, gradient clipping, optimizer step and ``zero_grad`` (MAE's
  ``NativeScalerWithGradNormCount``); a disabled ``GradScaler`` when not in fp16, so a CPU step is a plain
  ``backward`` + ``step``.
* :func:`train_step` / :func:`train_one_epoch`: one (micro-)batch and a run of steps with the per-step lr,
  gradient accumulation and DDP ``no_sync`` on the intermediate micro-batches.
* :func:`check_resume`: one refusal of a checkpoint that belongs to another run.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unip_hub.train.lr import set_lr

LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]
"""``loss_fn(model, batch) -> (scalar loss, {name: float})``; runs under autocast; the dict holds at least ``loss``."""

AMP_MODES = ("auto", "fp16", "bf16", "none")


def seed_everything(seed: int, *salt: int) -> int:
    """Seeds Python's, NumPy's and torch's generators; returns the seed used.

    Without ``salt`` the seed is ``seed`` itself; with ``salt`` (e.g. epoch and rank) it is
    ``(seed * 1_000_003 + salt[0] * 1009 + salt[1] + ...) % 2**31``, a different stream per (epoch, rank).
    """
    s = seed
    if salt:
        s = seed * 1_000_003 + salt[0] * 1009 + sum(salt[1:])
    s %= 2**31
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return s


def amp_dtype(mode: str | bool, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``mode`` on ``device`` (None = full precision).

    Args:
        mode: ``auto`` (fp16 on CUDA, none elsewhere), ``fp16``, ``bf16`` or ``none``; ``True`` / ``False``
            mean ``auto`` / ``none``.
        device: The training device.

    Raises:
        ValueError: unknown mode, or fp16 requested off CUDA.
    """
    if isinstance(mode, bool):
        mode = "auto" if mode else "none"
    if mode == "auto":
        mode = "fp16" if device.type == "cuda" else "none"
    table = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}
    if mode not in table:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {mode!r}")
    if mode == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs CUDA; use --amp bf16 or none on CPU")
    return table[mode]


class LossScaler:
    """Backward, clipping and optimizer step of one loss, with fp16 loss scaling when ``dtype`` is fp16.

    Args:
        device: The training device (the GradScaler's).
        dtype: The autocast dtype; loss scaling is enabled for ``torch.float16`` only.
        clip_grad: Clip the global gradient norm to this value (None: no clipping).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype | None = None, clip_grad: float | None = None) -> None:
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        self.clip_grad = clip_grad

    def __call__(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter],
                 update: bool = True) -> None:
        """``backward`` of ``loss``; with ``update``: unscale, clip, step, update the scale, ``zero_grad``."""
        self.scaler.scale(loss).backward()
        if not update:
            return
        if self.clip_grad:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(list(parameters), self.clip_grad)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        """The GradScaler's state (empty when loss scaling is off)."""
        return self.scaler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        """Restores a state of :meth:`state_dict`; an empty one is ignored."""
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(dict(state))


@dataclass
class StepContext:
    """What a training step needs besides the batch."""

    model: nn.Module  # possibly inside DistributedDataParallel
    optimizer: torch.optim.Optimizer
    scaler: LossScaler
    device: torch.device
    dtype: torch.dtype | None = None  # autocast dtype; None = full precision
    accum_iter: int = 1  # micro-batches per optimizer update


def to_device(batch: Any, device: torch.device) -> Any:
    """A tensor, or the tensors of (nested) tuples / lists / dicts (detection targets), moved to ``device``
    (non-blocking from pinned memory); anything else unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def train_step(ctx: StepContext, loss_fn: LossFn, batch: Any, step: int) -> dict[str, float]:
    """Forward and backward of one micro-batch (moved to ``ctx.device``); the optimizer steps after every
    ``accum_iter``-th.

    Returns:
        ``loss_fn``'s dict (losses of this process's micro-batch).

    Raises:
        FloatingPointError: the loss is not finite (training diverged; lower the lr).
    """
    update = (step + 1) % ctx.accum_iter == 0
    batch = to_device(batch, ctx.device)
    ddp = isinstance(ctx.model, nn.parallel.DistributedDataParallel)
    sync = ctx.model.no_sync() if ddp and not update else contextlib.nullcontext()
    with sync:
        with torch.autocast(ctx.device.type, dtype=ctx.dtype or torch.float32, enabled=ctx.dtype is not None):
            loss, parts = loss_fn(ctx.model, batch)
        if not math.isfinite(parts["loss"]):
            raise FloatingPointError(f"loss is {parts['loss']} at step {step}; training diverged (try a lower lr)")
        ctx.scaler(loss / ctx.accum_iter if ctx.accum_iter > 1 else loss, ctx.optimizer, ctx.model.parameters(),
                   update)
    return parts


def train_one_epoch(ctx: StepContext, loss_fn: LossFn, batches: Iterable[Any], steps: int,
                    lr_at: Callable[[int], float],
                    on_step: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """``steps`` micro-batches of ``batches``; the lr ``lr_at(step)`` is set at the start of every update.

    Args:
        ctx: Model, optimizer, scaler, device, autocast dtype and accumulation.
        loss_fn: See :data:`LossFn`.
        batches: Yields at least ``steps`` batches.
        steps: Micro-batches to run (a multiple of ``ctx.accum_iter`` for whole updates).
        lr_at: Base learning rate of a step index (0-based within this call); times each group's ``lr_scale``.
        on_step: Called after every step with its index and ``loss_fn``'s dict plus ``lr``.

    Returns:
        One dict per step.
    """
    ctx.model.train()
    ctx.optimizer.zero_grad(set_to_none=True)
    history: list[dict[str, float]] = []
    lr = 0.0
    for step, batch in zip(range(steps), batches):
        if step % ctx.accum_iter == 0:
            lr = lr_at(step)
            set_lr(ctx.optimizer, lr)
        parts = {**train_step(ctx, loss_fn, batch, step), "lr": lr}
        history.append(parts)
        if on_step is not None:
            on_step(step, parts)
    return history


def check_resume(current: Mapping[str, Any], saved: Mapping[str, Any] | None, path: str | Path,
                 keys: Iterable[str] | None = None, ignore: Iterable[str] = ()) -> None:
    """Refuses to resume from ``path`` when its run settings differ from the current ones.

    Args:
        current: The settings of this run (a dataclass as a dict).
        saved: The settings stored in the checkpoint (a dict or ``argparse.Namespace``-like object).
        path: The checkpoint, for the message.
        keys: Settings to compare (default: all of ``current``); a key missing from ``saved`` is skipped when
            ``keys`` is given.
        ignore: Settings that may change on resume (output folder, workers, logging).

    Raises:
        ValueError: naming each differing setting, its saved and its current value.
    """
    saved = vars(saved) if hasattr(saved, "__dict__") else dict(saved or {})
    norm = lambda v: list(v) if isinstance(v, (tuple, list)) else v  # noqa: E731
    names = [k for k in current if k not in set(ignore)] if keys is None else [k for k in keys if k in saved]
    diff = [k for k in names if norm(current[k]) != norm(saved.get(k))]
    if diff:
        detail = "; ".join(f"{k}: {saved.get(k)!r} in the checkpoint, {current[k]!r} now" for k in diff)
        raise ValueError(f"cannot resume {path}: it belongs to a different run ({detail}). Resuming continues the "
                         "same run; use a new output folder to change these settings")
