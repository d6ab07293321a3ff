"""A trained model's weights and its ``meta`` (what its loader needs to rebuild it) in one file, for every task.

Layouts: ``.pth`` = ``{'state_dict', 'meta'}`` (readable with ``torch.load(weights_only=True)``); ``.safetensors`` =
the flat state dict with the meta as JSON in the header metadata under the task's key (``unip_segmenter``,
``unip_detector``). Writing is atomic (:func:`unip_hub.utils.atomic.atomic_path`); reading goes through
:func:`unip_hub.checkpoints.read_checkpoint` and :func:`safetensors_meta`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unip_hub.checkpoints.read import CheckpointError
from unip_hub.utils.atomic import atomic_path

__all__ = ["plain_state_dict", "safetensors_meta", "write_model_file"]


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict on the CPU, contiguous and detached (what both layouts store)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def write_model_file(model: nn.Module, path: str | os.PathLike, meta: Mapping[str, Any], meta_key: str) -> Path:
    """Writes ``model``'s weights and ``meta`` (JSON types only) to ``path`` atomically, in the layout its suffix
    names (``.safetensors``, else ``.pth``)."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = json.loads(json.dumps(dict(meta)))  # plain lists/dicts/numbers/strings only (weights_only-safe)
    sd = plain_state_dict(model)
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            save_file(sd, str(tmp), metadata={meta_key: json.dumps(meta)})
        else:
            torch.save({"state_dict": sd, "meta": meta}, tmp)
    return path


def safetensors_meta(file: str | os.PathLike, meta_key: str) -> dict[str, Any] | None:
    """The meta stored under ``meta_key`` in a safetensors file's header (None when there is none).

    Raises:
        CheckpointError: the stored meta is not valid JSON.
    """
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        raw = (f.metadata() or {}).get(meta_key)
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file}: the {meta_key!r} metadata is not valid JSON ({e})") from e
