"""The fine-tuning loop, iteration-based like mmseg's ``IterBasedRunner``, on the shared core (:mod:`.core`).

:class:`SegLoss` is the step's loss (decode + ``aux_weight`` x auxiliary cross-entropy); :func:`train_loop` runs
iterations ``start .. total`` over an endless, resumable stream of batches (:class:`ResumableBatchSampler`) in
stretches of :func:`~unip_hub.train.core.train_one_epoch` between evaluations, logs windows of iterations,
evaluates and checkpoints through callbacks, and reports progress with tqdm on the main process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from unip_hub.train.core import LossFn, StepContext, train_one_epoch
from unip_hub.train.dist import all_reduce_mean, is_main_process
from unip_hub.train.lr import poly_lr


class SegTrainWrapper(nn.Module):
    """Makes ``forward`` run ``segmenter.forward_train`` so that DistributedDataParallel sees the training pass."""

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.segmenter.forward_train(x)


class ResumableBatchSampler(Sampler[list[int]]):
    """Batches of a seeded per-epoch permutation, sharded over processes, able to start in the middle of an epoch.

    Epoch ``e`` shuffles with seed ``seed + e``; rank ``r`` of ``world`` processes takes every ``world``-th index.
    Incomplete batches are dropped, so every epoch has ``len(self)`` batches on every rank.

    Args:
        size: Dataset length.
        batch_size: Samples per batch on this process.
        seed: Shuffling seed (the same on every rank).
        rank: This process's rank.
        world_size: Number of processes.
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if size < batch_size * world_size:
            raise ValueError(f"the training set has {size} samples, fewer than one batch of {batch_size} x "
                             f"{world_size} process(es); use a smaller --batch-size or more data")
        self.size, self.batch_size, self.seed, self.rank, self.world = size, batch_size, seed, rank, world_size
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Selects the epoch and the first batch of it to yield."""
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return self.size // (self.batch_size * self.world)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        mine = torch.randperm(self.size, generator=g)[self.rank::self.world].tolist()
        for b in range(self.start, len(self)):
            yield mine[b * self.batch_size:(b + 1) * self.batch_size]


def batch_stream(dataset: Dataset, sampler: ResumableBatchSampler, start_iteration: int, num_workers: int = 0,
                 pin_memory: bool = False, collate_fn: Callable[[list[Any]], Any] | None = None
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches continuing from ``start_iteration``: the same batches an uninterrupted run would see.

    The dataset's ``set_epoch`` (seeded augmentation) follows the sampler's epoch. The loader gets its own
    generator, so iterating it never consumes the global torch RNG (which drop-path uses). ``collate_fn`` makes
    the batch (default: stacked tensors; detection: lists of images and targets).
    """
    per_epoch = len(sampler)
    epoch, start = divmod(start_iteration, per_epoch)
    while True:
        sampler.set_position(epoch, start)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                            generator=torch.Generator().manual_seed(epoch), collate_fn=collate_fn)
        yield from loader
        epoch, start = epoch + 1, 0


def seg_loss(logits: torch.Tensor, aux: torch.Tensor | None, target: torch.Tensor, aux_weight: float = 0.4,
             ignore_index: int = 255) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the decode head plus ``aux_weight`` x that of the auxiliary head (mmseg's sum of losses).

    Args:
        logits: (B, K, H, W) at the label size.
        aux: (B, K, H, W) or None.
        target: (B, H, W) int64 class indices, ``ignore_index`` left out of the mean.
    """
    decode = F.cross_entropy(logits.float(), target, ignore_index=ignore_index)
    parts = {"loss_decode": decode.item()}
    loss = decode
    if aux is not None and aux_weight > 0:
        aux_loss = F.cross_entropy(aux.float(), target, ignore_index=ignore_index)
        loss = loss + aux_weight * aux_loss
        parts["loss_aux"] = aux_loss.item()
    parts["loss"] = loss.item()
    return loss, parts


class SegLoss:
    """The fine-tuning loss of one batch ``(images (B, 3, H, W), labels (B, H, W))`` for the shared core."""

    def __init__(self, aux_weight: float = 0.4, ignore_index: int = 255) -> None:
        self.aux_weight, self.ignore_index = aux_weight, ignore_index

    def __call__(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        images, labels = batch
        logits, aux = model(images)  # (B, K, H, W) each
        return seg_loss(logits, aux, labels, self.aux_weight, self.ignore_index)


@dataclass
class LoopSettings:
    """Schedule and bookkeeping of :func:`train_loop`."""

    total: int
    warmup: int
    base_lr: float
    start: int = 0
    eval_interval: int = 0  # 0 = only at the end
    log_interval: int = 20
    stop_after: int | None = None  # leave the loop after this iteration (time-boxed jobs, resume tests)
    progress: bool = True
    history: list[dict[str, float]] = field(default_factory=list)
    lr_at: Callable[[int], float] | None = None  # base lr of a 0-based iteration; None: poly decay (segmentation)

    def lr(self, it: int) -> float:
        """The base learning rate of iteration ``it`` (0-based)."""
        return self.lr_at(it) if self.lr_at is not None else poly_lr(it, self.total, self.base_lr, self.warmup)

    def next_stop(self, it: int, last: int) -> int:
        """The iteration after ``it`` at which to evaluate or stop."""
        nxt = (it // self.eval_interval + 1) * self.eval_interval if self.eval_interval else self.total
        return min(nxt, last)


class _LogWindow:
    """Mean losses (over iterations, then processes) and seconds per iteration of each ``log_interval`` window."""

    def __init__(self, interval: int, last: int, on_log: Callable[[int, dict[str, float]], None] | None) -> None:
        self.interval, self.last, self.on_log = interval, last, on_log
        self.restart()

    def restart(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.tic = time.perf_counter()

    def add(self, done: int, parts: dict[str, float]) -> None:
        self.rows.append(parts)
        if done % self.interval and done != self.last:
            return
        keys = [k for k in parts if k != "lr"]
        row = {k: all_reduce_mean(sum(w[k] for w in self.rows) / len(self.rows)) for k in keys}
        row["lr"] = parts["lr"]
        row["sec_per_iter"] = (time.perf_counter() - self.tic) / len(self.rows)
        if self.on_log is not None:
            self.on_log(done, row)
        self.restart()


def train_loop(
    ctx: StepContext,
    batches: Iterator[Any],
    settings: LoopSettings,
    loss_fn: LossFn | None = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    on_eval: Callable[[int], Any] | None = None,
    on_stop: Callable[[int], Any] | None = None,
) -> list[dict[str, float]]:
    """Runs iterations ``settings.start + 1 .. settings.total`` (1-based counts of finished iterations).

    The lr of iteration ``i`` (0-based) is ``settings.lr(i)``: :func:`~unip_hub.train.lr.poly_lr`
    ``(i, total, base_lr, warmup)`` unless ``settings.lr_at`` says otherwise. ``loss_fn`` is any
    :data:`~unip_hub.train.core.LossFn` (default :class:`SegLoss`).
    Every ``log_interval`` iterations the mean losses (averaged over processes) go to ``on_log``; every
    ``eval_interval`` iterations and at the end ``on_eval(iteration)`` runs (evaluation and checkpoints). A run
    cut short by ``stop_after`` calls ``on_stop(iteration)`` instead (save a checkpoint to resume from).

    Returns:
        ``settings.history``: one dict per iteration of this call (``iteration``, ``loss``, ``lr``, ...).
    """
    from tqdm.auto import tqdm

    s, loss_fn = settings, loss_fn or SegLoss()
    last = s.total if s.stop_after is None else min(s.total, s.stop_after)
    bar = tqdm(total=s.total, initial=s.start, desc="fine-tune", dynamic_ncols=True,
               disable=not (s.progress and is_main_process()))
    window = _LogWindow(s.log_interval, last, on_log)

    def record(done: int, parts: dict[str, float]) -> None:
        s.history.append({"iteration": done, **parts})
        bar.update(1)
        bar.set_postfix(loss=f"{parts['loss']:.3f}", lr=f"{parts['lr']:.2e}", refresh=False)
        window.add(done, parts)

    it = s.start
    try:
        while it < last:
            end = s.next_stop(it, last)
            train_one_epoch(ctx, loss_fn, batches, end - it,
                            lambda k, i=it: s.lr(i + k),
                            on_step=lambda k, parts, i=it: record(i + k + 1, parts))
            it = end
            if on_eval is not None and ((s.eval_interval and it % s.eval_interval == 0) or it == s.total):
                on_eval(it)
                window.tic = time.perf_counter()
            elif on_stop is not None and it == last < s.total:
                on_stop(it)
    finally:
        bar.close()
    return s.history
