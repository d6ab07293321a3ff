"""Training checkpoints: atomic writes (a kill never leaves a half-written file) and safe reading.

A training state is a dict of tensors, dicts, lists, tuples, numbers and strings only (model, optimizer and scaler
state dicts, iteration, the run config as a dict, rng states), so it reads back with ``weights_only=True`` through
:func:`unip_hub.checkpoints.read_checkpoint` -- no pickled code is ever run on resume.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_checkpoint_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to a temporary file beside ``path``, fsync, then ``os.replace`` onto ``path``.

    Either the old file or the complete new one is at ``path`` at every moment; the temporary file is removed
    if anything fails. ``.safetensors`` paths are written with safetensors (``obj`` must be a flat state dict).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if path.suffix == ".safetensors":
                from safetensors.torch import save

                f.write(save({k: v.detach().contiguous().cpu() for k, v in obj.items()}))
            else:
                torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Writes a text file (JSON, CSV) through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Reads a training state written by :func:`save_checkpoint_atomic` (``weights_only=True``, on CPU).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        unip_hub.checkpoints.CheckpointError: the file is corrupt or holds non-allow-listed objects.
    """
    from unip_hub.checkpoints import read_checkpoint

    return read_checkpoint(path)


def capture_rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's, torch's CPU and CUDA generators, in ``weights_only``-readable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restores the generators saved by :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
