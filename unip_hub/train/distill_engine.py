"""The NMI-HAD training run: MAE-style epochs on the shared core (:mod:`.core`), per-iteration warm-up + cosine lr,
gradient accumulation, mixed precision, DDP (``torchrun``), atomic checkpoints every N epochs with exact resume, and
the export of the student.

Determinism: the data order of epoch ``e`` comes from ``DistributedSampler(seed).set_epoch(e)`` and all other
randomness (augmentation, drop path, worker seeds) from generators re-seeded with ``(seed, e, rank)`` at the start
of the epoch, so a run resumed from the checkpoint of epoch ``e - 1`` repeats epoch ``e`` exactly.

Files in ``output_dir``: ``checkpoint-{epoch:03d}.pth`` (the layout of the released UNIP files: ``model``,
``optimizer``, ``epoch``, ``scaler``, ``args``), ``log.jsonl`` (one JSON line per epoch) and, at the end,
``student/`` (``save_pretrained`` folder: safetensors + config with ``distilled_last_heads``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unip_hub.hub.teachers import load_teacher
from unip_hub.train import dist as udist
from unip_hub.train.core import LossScaler, StepContext, amp_dtype, check_resume, seed_everything, train_one_epoch
from unip_hub.train.distill_config import DistillConfig
from unip_hub.train.distill_model import NMIHAD, build_student
from unip_hub.utils.atomic import atomic_dir, save_torch_atomic, write_text_atomic

__all__ = ["DistillResult", "build_nmihad", "distill_epoch", "export_student", "latest_checkpoint",
           "run_distillation"]

_CKPT = re.compile(r"^checkpoint-(\d+)\.pth$")
# settings a resumed run must share with its checkpoint
RESUME_KEYS = ("teacher_layer", "model", "embed_dim", "depth", "num_heads", "last_heads", "input_size", "loss")


@dataclass
class DistillResult:
    """What a run produced: per-step losses by epoch, the files written."""

    losses: dict[int, list[float]] = field(default_factory=dict)
    checkpoint: Path | None = None
    export_dir: Path | None = None
    lr: float = 0.0


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-NNN.pth`` with the highest epoch in ``output_dir``, or None."""
    found = [(int(m.group(1)), p) for p in Path(output_dir).glob("checkpoint-*.pth") if (m := _CKPT.match(p.name))]
    return max(found)[1] if found else None


def _nmihad_loss(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    loss = model(images)  # (B, 3, H, W) -> scalar
    return loss, {"loss": loss.item()}


def distill_epoch(ctx: StepContext, loader: Any, epoch: int, steps: int, cfg: DistillConfig, lr: float,
                  progress: bool = False) -> list[float]:
    """One epoch of ``steps`` micro-batches (lr: warm-up + cosine in fractional epochs, as MAE's ``lr_sched``).

    Returns:
        The loss of each micro-batch, averaged over processes.
    """
    from unip_hub.train.lr import cosine_lr

    losses: list[float] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=f"epoch {epoch}", leave=False)

    def on_step(_: int, parts: dict[str, float]) -> None:
        losses.append(udist.all_reduce_mean(parts["loss"]))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{parts['lr']:.2e}")

    try:
        train_one_epoch(ctx, _nmihad_loss, loader, steps,
                        lambda step: cosine_lr(epoch + step / steps, cfg.epochs, lr, cfg.warmup_epochs, cfg.min_lr),
                        on_step)
    finally:
        if bar is not None:
            bar.close()
    return losses


def build_nmihad(cfg: DistillConfig) -> NMIHAD:
    """The teacher (truncated, frozen), a fresh student with the teacher's head count, and their loss module."""
    teacher = load_teacher(cfg.teacher, arch=cfg.teacher_arch_or_none, layer=cfg.teacher_layer, fmt=cfg.teacher_format,
                           pretrained=cfg.pretrained_teacher)
    heads = cfg.last_heads or teacher.blocks[-1].attn.num_heads
    student = build_student(cfg.model, heads, cfg.drop_path, cfg.input_size, **cfg.student_overrides)
    student.set_grad_checkpointing(cfg.grad_checkpointing)
    return NMIHAD(student, teacher, loss=cfg.loss)


def export_student(student: nn.Module, cfg: DistillConfig, out_dir: str | Path, epochs_done: int) -> Path:
    """Writes ``student`` as a ``save_pretrained`` folder (atomically: filled under a temporary name, renamed)."""
    clean = build_student(cfg.model, student.last_heads, 0.0, cfg.input_size, **cfg.student_overrides)
    clean.load_state_dict(student.state_dict())
    clean.pretrained_cfg = {"source": "unip distill (NMI-HAD)", "distilled_from": cfg.teacher,
                            "distilled_layer": cfg.teacher_layer, "epochs": epochs_done, "loss": cfg.loss}
    with atomic_dir(out_dir, overwrite=True) as tmp:
        clean.save_pretrained(tmp)
    return Path(out_dir)


def _loader(cfg: DistillConfig, info: udist.DistInfo) -> tuple[Any, Any, int]:
    """(sampler, loader, steps per epoch): whole optimizer updates of the sharded, shuffled corpus."""
    from torch.utils.data import DataLoader, DistributedSampler

    from unip_hub.train.distill_data import build_pretrain_dataset, pretrain_transform

    dataset = build_pretrain_dataset(cfg.data_path, cfg.data_layout, pretrain_transform(cfg.input_size),
                                     cfg.imagenet_root, cfg.imagenet_per_class, cfg.coco_root)
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=info.device.startswith("cuda"), drop_last=True)
    steps = min(len(loader), cfg.max_steps_per_epoch or len(loader))
    steps -= steps % cfg.accum_iter
    if steps < 1:
        raise ValueError(f"{len(dataset)} images give no complete step of batch {cfg.batch_size} x accum "
                         f"{cfg.accum_iter} x {info.world_size} processes; use a smaller batch or more images")
    return sampler, loader, steps


def _resume(cfg: DistillConfig, student: nn.Module, optimizer: torch.optim.Optimizer, scaler: LossScaler) -> int:
    """Restores a checkpoint (``resume`` file, or the latest one with ``auto``); returns the first epoch to run."""
    path = latest_checkpoint(cfg.output_dir) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    if path is None:
        return 0
    from unip_hub.train.checkpointing import load_training_state

    state = load_training_state(path)
    check_resume(asdict(cfg), state.get("args"), path, keys=RESUME_KEYS)
    student.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state.get("scaler"))
    return int(state["epoch"]) + 1


class _EpochLog:
    """``log.jsonl``: the lines of epochs before ``start`` kept, one line per epoch added (main process only)."""

    def __init__(self, path: Path, start: int, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        self.lines: list[str] = []
        if enabled and path.exists():
            self.lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["epoch"] < start]

    def add(self, **row: Any) -> None:
        if self.enabled:
            self.lines.append(json.dumps(row))
            write_text_atomic("\n".join(self.lines) + "\n", self.path)


def _check(cfg: DistillConfig) -> None:
    if cfg.accum_iter < 1 or cfg.batch_size < 1 or cfg.epochs < 1 or cfg.save_every < 1:
        raise ValueError("batch_size, accum_iter, epochs and save_every must be positive")


def run_distillation(cfg: DistillConfig) -> DistillResult:
    """Runs (or resumes) an NMI-HAD pre-training described by ``cfg``; see the module docstring."""
    _check(cfg)
    owns_group = not udist.is_dist()
    info = udist.init_distributed(None if cfg.device == "auto" else cfg.device)
    try:
        return _distill(cfg, info)
    finally:
        if owns_group:
            udist.cleanup()


def _distill(cfg: DistillConfig, info: udist.DistInfo) -> DistillResult:
    """The run of :func:`run_distillation` in an initialised process group."""
    from unip_hub.train.optim import param_groups_weight_decay

    device, main, out = torch.device(info.device), info.rank == 0, Path(cfg.output_dir)
    dtype = amp_dtype(cfg.amp, device)
    seed_everything(cfg.seed, -1, info.rank)
    nmihad = build_nmihad(cfg).to(device)
    sampler, loader, steps = _loader(cfg, info)
    eff_batch = cfg.batch_size * cfg.accum_iter * info.world_size
    lr = cfg.lr if cfg.lr is not None else cfg.blr * eff_batch / 256
    optimizer = torch.optim.AdamW(param_groups_weight_decay(nmihad.student, cfg.weight_decay), lr=lr,
                                  betas=(cfg.beta1, cfg.beta2))
    scaler = LossScaler(device, dtype)
    start = _resume(cfg, nmihad.student, optimizer, scaler)
    model: nn.Module = nmihad
    if info.distributed:  # the last block's proj / MLP / norm2 and the final norm get no gradient by design
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(nmihad, device_ids=ids, find_unused_parameters=True)
    ctx = StepContext(model, optimizer, scaler, device, dtype, cfg.accum_iter)
    log, result = _EpochLog(out / "log.jsonl", start, main), DistillResult(lr=lr)
    for epoch in range(start, cfg.epochs):
        sampler.set_epoch(epoch)
        seed_everything(cfg.seed, epoch, info.rank)
        losses = result.losses[epoch] = distill_epoch(ctx, loader, epoch, steps, cfg, lr, progress=main)
        log.add(epoch=epoch, loss=float(np.mean(losses)), first_loss=losses[0], last_loss=losses[-1],
                lr=optimizer.param_groups[0]["lr"], steps=steps, images=steps * eff_batch)
        if (epoch + 1) % cfg.save_every == 0 or epoch + 1 == cfg.epochs:
            result.checkpoint = out / f"checkpoint-{epoch:03d}.pth"
            if main:
                save_torch_atomic({"model": nmihad.student.state_dict(), "optimizer": optimizer.state_dict(),
                                   "epoch": epoch, "scaler": scaler.state_dict(), "args": cfg.to_namespace()},
                                  result.checkpoint)
    if main and start < cfg.epochs:
        result.export_dir = export_student(nmihad.student, cfg, out / "student", cfg.epochs)
    udist.barrier()
    return result
