"""One training run of any task on the training core: resume, checkpoints, periodic evaluation, the loop.

:class:`TrainingRun` holds what every task's run has (model, optimizer, loss scaler, evaluation set, logger,
counters, the best score) and does what every task's run does: restores a saved run (weights, optimizer, scaler,
counters, this rank's rng state), saves the training state atomically with every rank's rng state, evaluates at
the loop's evaluation points and keeps ``best.pth`` by the task's metric, and runs
:func:`~unip_hub.train.engine.train_loop` over a resumable batch stream. A task subclasses it with its metric name,
its evaluation, the ``meta`` saved beside its weights and the files it writes per evaluation
(:class:`unip_hub.train.finetune.SegmentationRun`, :class:`unip_hub.detection.train.DetectionRun`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from unip_hub.checkpoints import load_state_dict_strict
from unip_hub.train import dist as udist
from unip_hub.train.checkpointing import capture_rng_state, load_training_state, restore_rng_state
from unip_hub.train.core import StepContext, check_resume, seed_everything
from unip_hub.train.engine import LoopSettings, ResumableBatchSampler, batch_stream, train_loop
from unip_hub.train.logger import RunLogger
from unip_hub.utils.atomic import save_torch_atomic, write_text_atomic

__all__ = ["TrainingRun", "resume_state", "start_processes"]


def start_processes(cfg: Any) -> udist.DistInfo:
    """Joins the ``torchrun`` group (or runs alone), checks that the global batch splits evenly over the processes
    and seeds this rank."""
    info = udist.init_distributed(None if cfg.device == "auto" else cfg.device)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {info.world_size} processes")
    seed_everything(cfg.seed + info.rank)
    return info


def resume_state(cfg: Any, task: str, ignore: set[str] | frozenset[str],
                 defaults: dict[str, Any] | None = None) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint a run continues from (``cfg.resume``, or ``<out_dir>/last.pth`` with ``"auto"``) and its
    state, after checking that it is a ``task`` run with the same settings (``ignore``: settings that may change;
    ``defaults``: settings older runs did not record)."""
    out = Path(cfg.out_dir)
    resume = Path(cfg.resume) if cfg.resume not in (None, "auto") else None
    if cfg.resume == "auto" and (out / "last.pth").is_file():
        resume = out / "last.pth"
    if resume is None:
        return None, None
    state = load_training_state(resume)
    if state.get("task", "segmentation") != task:
        raise ValueError(f"cannot resume {resume}: it is a {state.get('task', 'segmentation')} run, not {task} "
                         "(unip finetune --task)")
    check_resume(asdict(cfg), {**(defaults or {}), **state["config"]}, resume, ignore=ignore)
    return resume, state


@dataclass
class TrainingRun:
    """A run: its model, optimizer and scaler, evaluation set, and the evaluation record the callbacks update.

    Subclasses set :attr:`task` and :attr:`metric` and implement :meth:`evaluate`, :meth:`meta`,
    :meth:`write_evaluation` and :meth:`summary`.
    """

    task: ClassVar[str] = ""
    metric: ClassVar[str] = ""  # the evaluation number kept best (``best.pth``), higher is better

    cfg: Any
    info: udist.DistInfo
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any
    eval_ds: Any
    logger: RunLogger | None = None
    start: int = 0
    best: float = -1.0
    best_it: int = 0
    evals: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------- what a task says
    def evaluate(self) -> dict[str, Any]:
        """The task's evaluation of :attr:`model` on :attr:`eval_ds` (every rank calls it)."""
        raise NotImplementedError

    def meta(self, iteration: int) -> dict[str, Any]:
        """The ``meta`` saved beside the weights: what the task's loader needs to rebuild the model."""
        raise NotImplementedError

    def write_evaluation(self, result: dict[str, Any], iteration: int) -> None:
        """Writes the evaluation's files into the run folder (rank 0)."""
        raise NotImplementedError

    def summary(self, result: dict[str, Any]) -> str:
        """One line of the evaluation's numbers."""
        raise NotImplementedError

    def eval_record(self, result: dict[str, Any]) -> dict[str, Any]:
        """What :attr:`evals` keeps of an evaluation (the metric by default)."""
        return {self.metric: result[self.metric]}

    # ------------------------------------------------------------------------------------- what every run does
    @property
    def main(self) -> bool:
        return self.info.rank == 0

    @property
    def out(self) -> Path:
        return Path(self.cfg.out_dir)

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Weights, optimizer, scaler, counters and this rank's rng state of a saved run."""
        load_state_dict_strict(self.model, state["state_dict"], source=str(path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state.get("scaler"))
        self.start, self.best = int(state["iteration"]), float(state[f"best_{self.metric}"])
        self.best_it, self.evals = int(state["best_iteration"]), list(state.get("evals", []))
        self.final = state.get("final") or (self.evals[-1] if self.evals else None)
        rngs = state.get("rng") or []
        if self.info.rank < len(rngs):
            restore_rng_state(rngs[self.info.rank])
        if self.main:
            print(f"resumed {path} at iteration {self.start}/{self.cfg.iterations}", file=sys.stderr)

    def begin(self, state: dict[str, Any] | None, resume: Path | None, log_fields: tuple[str, ...] | None = None
              ) -> None:
        """Restores ``state`` (or notes a random backbone), opens the log and writes ``config.json``."""
        if state is not None:
            self.restore(state, resume)
        elif self.main and self.cfg.weights is None:
            print("note: no --weights given, the backbone starts from random initialisation", file=sys.stderr)
        self.logger = RunLogger(self.out, self.start, self.cfg.tensorboard, enabled=self.main,
                                **({"fields": log_fields} if log_fields else {}))
        if self.main:
            write_text_atomic(json.dumps(asdict(self.cfg), indent=2), self.out / "config.json")

    def save(self, iteration: int, names: tuple[str, ...]) -> None:
        """Writes the training state (with every rank's rng state) to ``names`` in the run folder."""
        rngs = [capture_rng_state()]
        if self.info.distributed:
            rngs = [None] * self.info.world_size
            torch.distributed.all_gather_object(rngs, capture_rng_state())
        if not self.main:
            return
        ckpt = {"task": self.task, "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "meta": self.meta(iteration), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "iteration": iteration, "config": asdict(self.cfg), "rng": rngs,
                f"best_{self.metric}": self.best, "best_iteration": self.best_it, "evals": self.evals,
                "final": json.loads(json.dumps(self.final, default=float)) if self.final else None}
        for name in names:
            save_torch_atomic(ckpt, self.out / name)

    def on_eval(self, iteration: int) -> None:
        """Evaluates, logs, keeps the best by :attr:`metric`, checkpoints (``last.pth``; ``best.pth`` when
        improved)."""
        result = self.evaluate()
        self.final = result
        self.evals.append({"iteration": iteration, **self.eval_record(result)})
        self.logger.log(iteration, "eval", result)
        improved = result[self.metric] > self.best
        if improved:
            self.best, self.best_it = result[self.metric], iteration
        self.save(iteration, ("last.pth", "best.pth") if improved else ("last.pth",))
        if self.main:
            self.write_evaluation(result, iteration)
            print(f"iteration {iteration}: {self.summary(result)} (best {self.metric} {100 * self.best:.2f} at "
                  f"{self.best_it})", file=sys.stderr)
        udist.barrier()

    def fit(self, ctx: StepContext, train_ds: Any, loss: Callable[..., Any], stop_after: int | None,
            lr_at: Callable[[int], float] | None = None, collate_fn: Callable[..., Any] | None = None
            ) -> list[dict[str, float]]:
        """The loop from :attr:`start` to the end (or ``stop_after``); returns this call's per-iteration losses."""
        cfg, info = self.cfg, self.info
        sampler = ResumableBatchSampler(len(train_ds), cfg.batch_size // info.world_size, cfg.seed, info.rank,
                                        info.world_size)
        settings = LoopSettings(cfg.iterations, cfg.warmup, cfg.lr, self.start, cfg.eval_interval, cfg.log_interval,
                                stop_after, cfg.progress, **({"lr_at": lr_at} if lr_at else {}))
        batches = batch_stream(train_ds, sampler, self.start, cfg.num_workers, pin_memory=ctx.device.type == "cuda",
                               **({"collate_fn": collate_fn} if collate_fn else {}))
        try:
            return train_loop(ctx, batches, settings, loss, on_log=lambda it, row: self.logger.log(it, "train", row),
                              on_eval=self.on_eval, on_stop=lambda it: self.save(it, ("last.pth",)))
        finally:
            batches.close()
            self.logger.close()
