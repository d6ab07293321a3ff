"""Detector files (config stored with the weights, as segmenters do) and the optimizer's parameter groups.

Three layouts, all read without running pickled code (:func:`unip_hub.checkpoints.read_checkpoint`):

- ``.pth`` (any other suffix too): ``{'state_dict': UnipDetector.state_dict(), 'meta': {...}}``, readable with
  ``torch.load(weights_only=True)``; training-state files holding the weights under ``'model'`` load as well.
- ``.safetensors``: the flat state dict, the meta as JSON in the file's metadata under ``unip_detector``.
- a Hugging Face folder (a path without suffix): ``model.safetensors`` + ``config.json`` (the meta).

The meta is :attr:`UnipDetector.config` (the :func:`~unip_hub.detection.models.create_detector` keywords) plus
``num_classes``, ``class_names``, ``input_scaling`` and ``counts_to_celsius``, and whatever ``meta=`` adds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unip_hub.checkpoints import CheckpointError, load_state_dict_strict, read_checkpoint
from unip_hub.checkpoints.model_files import safetensors_meta, write_model_file
from unip_hub.checkpoints.read import CONFIG_NAME, SAFETENSORS_NAME
from unip_hub.detection.models import UnipDetector, create_detector
from unip_hub.train.optim import param_groups_lrd, param_groups_weight_decay
from unip_hub.utils.atomic import atomic_dir

__all__ = ["META_KEY", "detector_meta", "detector_param_groups", "load_detector", "read_detector", "save_detector"]

META_KEY = "unip_detector"
FORMAT = "unip_detector"
# create_detector keywords stored in the meta, besides arch / head / num_classes
_BUILD_KEYS = ("class_names", "box_head", "min_size", "max_size", "input_scaling", "counts_to_celsius",
               "out_channels", "neck", "rpn_convs", "window_size", "global_blocks", "detector_kwargs")


def detector_meta(model: UnipDetector, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON meta saved with a detector: its build config, labels and input reading, then ``extra``."""
    meta = {**model.config, "format": FORMAT, "num_classes": model.num_classes, "class_names": model.class_names,
            "input_scaling": model.input_scaling, "counts_to_celsius": model.counts_to_celsius, **dict(extra or {})}
    return json.loads(json.dumps(meta))  # plain lists / dicts / numbers / strings only (weights_only-safe)


def save_detector(model: UnipDetector, path: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> Path:
    """Writes a detector's weights and meta atomically; the layout follows ``path`` (see the module docstring).

    Args:
        model: The detector.
        path: ``*.pth`` (or any suffix but ``.safetensors``), ``*.safetensors``, or a folder path without suffix
            (Hugging Face layout; an existing folder is replaced).
        meta: Extra JSON-serialisable entries (epoch, metrics ...) stored beside the build config.
    """
    path = Path(path)
    full = detector_meta(model, meta)
    if path.suffix == "" or path.is_dir():
        with atomic_dir(path, overwrite=True) as tmp:
            write_model_file(model, tmp / SAFETENSORS_NAME, full, META_KEY)
            (tmp / CONFIG_NAME).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
        return path
    return write_model_file(model, path, full, META_KEY)


def read_detector(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, meta) of a detector file or folder, read safely.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: unreadable, unsafe, or not a detector saved by :func:`save_detector`.
    """
    path = Path(path)
    obj = read_checkpoint(path)
    if path.is_dir():
        cfg = path / CONFIG_NAME
        try:
            meta = json.loads(cfg.read_text(encoding="utf-8")) if cfg.is_file() else None
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg} is not valid JSON ({e}); re-save the detector with save_detector") from e
        sd = obj
    elif path.suffix == ".safetensors":
        meta, sd = safetensors_meta(path, META_KEY), obj
    else:
        meta = obj.get("meta")
        sd = next((c for c in (obj.get("state_dict"), obj.get("model")) if isinstance(c, Mapping)), obj)
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a UNIP detector checkpoint (no {FORMAT!r} meta); detectors are written "
                              "by unip_hub.detection.save_detector. Backbone weights go to create_detector(weights=)")
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    return sd, dict(meta)


def load_detector(path: str | os.PathLike, device: str | torch.device | None = None) -> UnipDetector:
    """A trained detector from its file or folder alone, strictly loaded, in eval mode.

    Args:
        path: What :func:`save_detector` wrote (``.pth``, ``.safetensors`` or a Hugging Face folder).
        device: Where to put it (default: CPU).

    Raises:
        CheckpointError: not a detector file, or weights that do not fit the stored config (names the keys).
    """
    sd, meta = read_detector(path)
    missing = [k for k in ("arch", "head", "num_classes") if meta.get(k) is None]
    if missing:
        raise CheckpointError(f"{path}: the detector meta lacks {missing}; re-save it with save_detector")
    kwargs = {k: meta[k] for k in _BUILD_KEYS if meta.get(k) is not None}
    model = create_detector(meta["arch"], head=meta["head"], num_classes=int(meta["num_classes"]), **kwargs,
                            **dict(meta.get("vit_kwargs") or {}))
    load_state_dict_strict(model, sd, source=str(path), allow_missing=[r".*\.num_batches_tracked"])
    return model.to(device or "cpu").eval()


def _outside(module: nn.Module, inside: set[int], skip: nn.Module) -> list[nn.Module]:
    """The largest submodules of ``module`` holding none of the parameters ``inside`` (``skip`` excluded)."""
    out = []
    for child in module.children():
        ids = {id(p) for p in child.parameters()}
        if not ids & inside:
            out.append(child)
        elif child is not skip:
            out.extend(_outside(child, inside, skip))
    return out


def detector_param_groups(model: UnipDetector, lr: float, weight_decay: float = 0.1,
                          layer_decay: float = 0.7) -> list[dict]:
    """AdamW groups of the detection recipe: layer-wise lr decay over the ViT, no decay on norms, biases, tokens.

    The ViT's groups come from :func:`unip_hub.train.optim.param_groups_lrd` (embeddings = layer 0, block ``i`` =
    layer ``i + 1``, ``lr_scale = layer_decay ** (depth + 1 - layer)``; ``pos_embed`` / ``cls_token`` without
    weight decay); pyramid, FPN and heads train at ``lr`` (scale 1) with decay on their weight matrices only.

    Args:
        model: The detector.
        lr: Base learning rate; each group's ``lr`` is ``lr * lr_scale`` (``unip_hub.train.lr.set_lr`` resets it).
        weight_decay: Decay of weight matrices (the recipe: 0.1).
        layer_decay: Per-block lr factor (the recipe: 0.7 over 12 blocks); 1 disables it.
    """
    vit = model.backbone
    groups = param_groups_lrd(vit, weight_decay, layer_decay)
    inside = {id(p) for p in vit.parameters()}
    rest: dict[float, list[nn.Parameter]] = {}
    for sub in _outside(model, inside, vit):
        for g in param_groups_weight_decay(sub, weight_decay):
            rest.setdefault(g["weight_decay"], []).extend(g["params"])
    groups += [{"params": ps, "weight_decay": wd, "lr_scale": 1.0, "layer_id": vit.depth + 1}
               for wd, ps in sorted(rest.items())]
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    return groups
