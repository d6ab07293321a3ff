"""Which model the app runs: a checkpoint file or folder, the ``unip demo`` checkpoint when one is found, a
detector checkpoint once :func:`unip_hub.detection.load_detector` exists; registry names explained.

A model is loaded once per file version (path, size and modification time) and kept (:func:`load_choice`), so
each analysis only reads its input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["DEMO_CHECKPOINT", "LoadedModel", "demo_checkpoint", "load_choice", "model_choices", "resolve_choice"]

DEMO_CHECKPOINT = Path("unip-demo") / "run" / "best.pth"
"""Where ``unip demo`` (default ``--out unip-demo``) leaves its best checkpoint, relative to where it ran."""


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model and what the app needs to know about it.

    Attributes:
        task: ``"segmentation"`` or ``"detection"``.
        model: The segmenter (eval mode) or the detector.
        source: The file it came from.
    """

    task: str
    model: Any
    source: str


def demo_checkpoint(root: str | os.PathLike | None = None) -> Path | None:
    """The ``unip demo`` checkpoint under ``root`` (default: the working folder), if it exists."""
    path = Path(root or ".") / DEMO_CHECKPOINT
    return path if path.is_file() else None


def model_choices(default: str | None = None) -> list[str]:
    """What the model box offers: ``default`` (e.g. ``unip app --model``), then the demo's checkpoint if found."""
    choices = [default] if default else []
    demo = demo_checkpoint()
    if demo is not None and str(demo) not in choices:
        choices.append(str(demo))
    return choices


def _registry_names() -> set[str]:
    from unip_hub.hub.registry import list_weights

    return set(list_weights())


def resolve_choice(choice: str | None) -> Path:
    """The checkpoint file or folder a model choice names.

    Raises:
        ValueError: No choice, a registry name (those are pre-trained backbones without a segmentation head), or
            a path that does not exist; the message says what to choose instead.
    """
    text = (choice or "").strip()
    if not text:
        demo = demo_checkpoint()
        if demo is not None:
            return demo
        raise ValueError("choose a model: the path of a segmenter checkpoint (.pth / .safetensors / model folder), "
                         "e.g. from `unip finetune` or `unip demo` (its run/best.pth)")
    path = Path(text).expanduser()
    if path.exists():
        return path
    if text in _registry_names() or text.split(".")[-1] in {n.split(".")[-1] for n in _registry_names()}:
        raise ValueError(f"{text!r} names pre-trained backbone weights in the registry, which have no segmentation "
                         f"head yet: fine-tune them first (`unip finetune --weights {text}` or `unip demo --weights "
                         f"{text}`) and choose the checkpoint that writes")
    raise ValueError(f"model {text!r} not found: give the path of a segmenter checkpoint (.pth / .safetensors / "
                     "model folder)")


def _detector(path: str, device: str) -> LoadedModel | None:
    """The detector in ``path``, or ``None`` when the file holds none (or detectors cannot be loaded here)."""
    from unip_hub.checkpoints import CheckpointError

    try:
        from unip_hub.detection import load_detector
    except ImportError:  # torchvision missing
        return None
    try:
        return LoadedModel("detection", load_detector(path, device=device), path)
    except CheckpointError:
        return None


@lru_cache(maxsize=4)
def _load(path: str, size: int, mtime: float, device: str) -> LoadedModel:
    """The model in ``path``: a segmenter, else a detector (the file's size and time make a changed file load
    again)."""
    import torch

    from unip_hub.checkpoints import CheckpointError
    from unip_hub.hub.segmenters import load_segmenter

    try:
        return LoadedModel("segmentation", load_segmenter(path, aux=False).to(torch.device(device)).eval(), path)
    except CheckpointError:
        detector = _detector(path, device)
        if detector is None:
            raise
        return detector


def load_choice(choice: str | None, device: str = "cpu") -> LoadedModel:
    """Loads (once per file version) the model a choice names (see :func:`resolve_choice`)."""
    path = resolve_choice(choice)
    stat = path.stat()
    return _load(str(path), stat.st_size, stat.st_mtime, device)
