"""The NMI-HAD training loop: MAE-style epochs, per-iteration warm-up + cosine lr, gradient accumulation, mixed
precision, DDP (``torchrun``), atomic checkpoints every N epochs with exact resume, and the export of the student.

Determinism: the data order of epoch ``e`` comes from ``DistributedSampler(seed).set_epoch(e)`` and all other
randomness (augmentation, drop path, worker seeds) from generators re-seeded with ``(seed, e, rank)`` at the start
of the epoch, so a run resumed from the checkpoint of epoch ``e - 1`` repeats epoch ``e`` exactly.

Files in ``output_dir``: ``checkpoint-{epoch:03d}.pth`` (the layout of the released UNIP files: ``model``,
``optimizer``, ``epoch``, ``scaler``, ``args``), ``log.jsonl`` (one JSON line per epoch) and, at the end,
``student/`` (``save_pretrained`` folder: safetensors + config with ``distilled_last_heads``).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unip_hub.train.distill import NMIHAD, DistillConfig, build_student, load_teacher

_CKPT = re.compile(r"^checkpoint-(\d+)\.pth$")


@dataclass
class DistillResult:
    """What a run produced: per-step losses by epoch, the files written."""

    losses: dict[int, list[float]] = field(default_factory=dict)
    checkpoint: Path | None = None
    export_dir: Path | None = None
    lr: float = 0.0


def _seed(seed: int, epoch: int, rank: int) -> None:
    s = (seed * 1_000_003 + epoch * 1009 + rank) % (2**31)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _amp(cfg: DistillConfig, device: torch.device) -> torch.dtype | None:
    mode = cfg.amp if cfg.amp != "auto" else ("fp16" if device.type == "cuda" else "none")
    table = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}
    if mode not in table:
        raise ValueError(f"amp must be auto, fp16, bf16 or none, got {cfg.amp!r}")
    if mode == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs CUDA; use --amp bf16 or none on CPU")
    return table[mode]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-NNN.pth`` with the highest epoch in ``output_dir``, or None."""
    found = [(int(m.group(1)), p) for p in Path(output_dir).glob("checkpoint-*.pth") if (m := _CKPT.match(p.name))]
    return max(found)[1] if found else None


def _check_resume(cfg: DistillConfig, saved: object, path: Path) -> None:
    keys = ("teacher_layer", "model", "embed_dim", "depth", "num_heads", "last_heads", "input_size", "loss")
    saved = vars(saved) if hasattr(saved, "__dict__") else dict(saved or {})
    diff = [f"{k}: {saved.get(k)!r} in the file vs {getattr(cfg, k)!r} now" for k in keys
            if k in saved and saved.get(k) != getattr(cfg, k)]
    if diff:
        raise ValueError(f"cannot resume from {path}: it belongs to a different run ({'; '.join(diff)})")


def train_one_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    epoch: int, steps: int, cfg: DistillConfig, lr: float, device: torch.device,
                    amp_dtype: torch.dtype | None, progress: bool = False) -> list[float]:
    """One epoch of ``steps`` iterations; returns the loss of each iteration (mean over processes)."""
    from unip_hub.train.dist import all_reduce_mean
    from unip_hub.train.lr import cosine_lr, set_lr

    model.train()
    optimizer.zero_grad(set_to_none=True)
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=f"epoch {epoch}", leave=False)
    for step, images in enumerate(loader):
        if step >= steps:
            break
        if step % cfg.accum_iter == 0:  # per-iteration schedule, in fractional epochs (MAE)
            set_lr(optimizer, cosine_lr(epoch + step / steps, cfg.epochs, lr, cfg.warmup_epochs, cfg.min_lr))
        images = images.to(device, non_blocking=True)
        update = (step + 1) % cfg.accum_iter == 0
        sync = contextlib.nullcontext() if (update or not ddp) else model.no_sync()
        with sync:
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = model(images)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch} step {step}; stopping")
            scaler.scale(loss / cfg.accum_iter).backward()
        if update:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        losses.append(all_reduce_mean(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    if bar is not None:
        bar.close()
    return losses


def export_student(student: nn.Module, cfg: DistillConfig, out_dir: str | Path, epochs_done: int) -> Path:
    """Writes ``student`` as a ``save_pretrained`` folder (atomically: temp folder, then rename)."""
    clean = build_student(cfg.model, student.last_heads, 0.0, cfg.input_size,
                          **{k: v for k, v in (("embed_dim", cfg.embed_dim), ("depth", cfg.depth),
                                               ("num_heads", cfg.num_heads)) if v is not None})
    clean.load_state_dict(student.state_dict())
    clean.pretrained_cfg = {"source": "unip distill (NMI-HAD)", "distilled_from": cfg.teacher,
                            "distilled_layer": cfg.teacher_layer, "epochs": epochs_done, "loss": cfg.loss}
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        clean.save_pretrained(tmp)
        old = out_dir.with_name(f".{out_dir.name}.old")
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def run_distillation(cfg: DistillConfig) -> DistillResult:
    """Runs (or resumes) an NMI-HAD pre-training described by ``cfg``; see the module docstring."""
    from torch.utils.data import DataLoader, DistributedSampler

    from unip_hub.train.checkpointing import atomic_write_text, load_training_state, save_checkpoint_atomic
    from unip_hub.train.dist import barrier, cleanup, init_distributed, is_dist
    from unip_hub.train.distill_data import build_pretrain_dataset, pretrain_transform
    from unip_hub.train.optim import param_groups_weight_decay

    if cfg.accum_iter < 1 or cfg.batch_size < 1 or cfg.epochs < 1 or cfg.save_every < 1:
        raise ValueError("batch_size, accum_iter, epochs and save_every must be positive")
    owns_group = not is_dist()
    info = init_distributed(None if cfg.device == "auto" else cfg.device)
    device = torch.device(info.device)
    main = info.rank == 0
    out = Path(cfg.output_dir)
    amp_dtype = _amp(cfg, device)
    try:
        _seed(cfg.seed, -1, info.rank)
        arch = None if (cfg.teacher_arch or "auto").lower() in ("auto", "none", "") else cfg.teacher_arch
        teacher = load_teacher(cfg.teacher, arch=arch, layer=cfg.teacher_layer, fmt=cfg.teacher_format,
                               pretrained=cfg.pretrained_teacher)
        heads = cfg.last_heads or teacher.blocks[-1].attn.num_heads
        overrides = {k: v for k, v in (("embed_dim", cfg.embed_dim), ("depth", cfg.depth),
                                       ("num_heads", cfg.num_heads)) if v is not None}
        student = build_student(cfg.model, heads, cfg.drop_path, cfg.input_size, **overrides)
        student.set_grad_checkpointing(cfg.grad_checkpointing)
        nmihad = NMIHAD(student, teacher, loss=cfg.loss).to(device)

        dataset = build_pretrain_dataset(cfg.data_path, cfg.data_layout, pretrain_transform(cfg.input_size),
                                         cfg.imagenet_root, cfg.imagenet_per_class, cfg.coco_root)
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
        loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                            pin_memory=device.type == "cuda", drop_last=True)
        steps = min(len(loader), cfg.max_steps_per_epoch or len(loader))
        steps -= steps % cfg.accum_iter  # whole optimizer updates only
        if steps < 1:
            raise ValueError(f"{len(dataset)} images give no complete step of batch {cfg.batch_size} x accum "
                             f"{cfg.accum_iter} x {info.world_size} processes; use a smaller batch or more images")
        eff_batch = cfg.batch_size * cfg.accum_iter * info.world_size
        lr = cfg.lr if cfg.lr is not None else cfg.blr * eff_batch / 256
        optimizer = torch.optim.AdamW(param_groups_weight_decay(student, cfg.weight_decay), lr=lr,
                                      betas=(cfg.beta1, cfg.beta2))
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

        start = 0
        resume = latest_checkpoint(out) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
        if resume is not None:
            state = load_training_state(resume)
            _check_resume(cfg, state.get("args"), resume)
            student.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            start = int(state["epoch"]) + 1
        model = nmihad
        if info.distributed:
            ids = [device.index] if device.type == "cuda" else None
            # the last block's proj / MLP / norm2 and the final norm get no gradient by design
            model = nn.parallel.DistributedDataParallel(nmihad, device_ids=ids, find_unused_parameters=True)

        log_path = out / "log.jsonl"
        log = []
        if main and log_path.exists():
            log = [ln for ln in log_path.read_text().splitlines() if ln and json.loads(ln)["epoch"] < start]
        result = DistillResult(lr=lr)
        for epoch in range(start, cfg.epochs):
            sampler.set_epoch(epoch)
            _seed(cfg.seed, epoch, info.rank)
            losses = train_one_epoch(model, loader, optimizer, scaler, epoch, steps, cfg, lr, device, amp_dtype,
                                     progress=main)
            result.losses[epoch] = losses
            if main:
                log.append(json.dumps({"epoch": epoch, "loss": float(np.mean(losses)), "first_loss": losses[0],
                                       "last_loss": losses[-1], "lr": optimizer.param_groups[0]["lr"],
                                       "steps": steps, "images": steps * eff_batch}))
                atomic_write_text("\n".join(log) + "\n", log_path)
            if (epoch + 1) % cfg.save_every == 0 or epoch + 1 == cfg.epochs:
                path = out / f"checkpoint-{epoch:03d}.pth"
                if main:
                    save_checkpoint_atomic({"model": student.state_dict(), "optimizer": optimizer.state_dict(),
                                            "epoch": epoch, "scaler": scaler.state_dict(),
                                            "args": cfg.to_namespace()}, path)
                result.checkpoint = path
        if main and start < cfg.epochs:
            result.export_dir = export_student(student, cfg, out / "student", cfg.epochs)
        barrier()
        return result
    finally:
        if owns_group:
            cleanup()
