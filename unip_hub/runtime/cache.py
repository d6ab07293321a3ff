"""Where built runtimes are kept: one folder, files named by the sha256 of the weights and of the build recipe.

A built graph is ``<weights sha256[:16]>-<recipe sha256[:12]>.onnx`` with a ``.json`` beside it (the recipe, the
accuracy measured when it was built, the versions). Changed weights give another name, so a stale file is never
used: the build runs again ("rebuild on change"). Files are written atomically (:mod:`unip_hub.utils.atomic`).

The folder: ``cache_dir`` when given; else a ``.unip-runtime/`` folder next to the checkpoint the model was loaded
from (``checkpoint``); else ``$UNIP_CACHE_DIR/runtime``; else ``~/.cache/unip/runtime``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unip_hub.utils.atomic import write_text_atomic

CACHE_FOLDER = ".unip-runtime"


def weights_sha256(model: nn.Module) -> str:
    """sha256 of ``model``'s state dict: every name, dtype, shape and the bytes of every tensor, in order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def recipe_sha256(recipe: dict[str, Any]) -> str:
    """sha256 of a JSON-able build recipe (sorted keys)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()


def default_cache_dir(checkpoint: str | os.PathLike | None = None) -> Path:
    """The folder built runtimes go to (see the module docstring)."""
    if checkpoint is not None:
        return Path(checkpoint).resolve().parent / CACHE_FOLDER
    root = os.environ.get("UNIP_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "unip"
    return base / "runtime"


@dataclass(frozen=True)
class CacheEntry:
    """The files of one built runtime."""

    graph: Path
    meta: Path

    @classmethod
    def of(cls, folder: Path, weights: str, recipe: dict[str, Any]) -> CacheEntry:
        stem = f"{weights[:16]}-{recipe_sha256(recipe)[:12]}"
        return cls(folder / f"{stem}.onnx", folder / f"{stem}.json")

    def load_meta(self) -> dict[str, Any] | None:
        """The stored metadata, or ``None`` when the entry is missing, incomplete or unreadable (rebuild then)."""
        if not (self.graph.is_file() and self.meta.is_file()):
            return None
        try:
            return json.loads(self.meta.read_text())
        except (OSError, ValueError):
            return None

    def save_meta(self, meta: dict[str, Any]) -> None:
        write_text_atomic(json.dumps(meta, indent=2, default=str), self.meta)
