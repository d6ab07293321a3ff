"""Training checkpoints: safe reading of training states and the rng states they carry.

States are written with :func:`unip_hub.utils.atomic.save_torch_atomic` (a kill never leaves a half-written file).

A training state is a dict of tensors, dicts, lists, tuples, numbers and strings only (model, optimizer and scaler
state dicts, iteration, the run config as a dict, rng states), so it reads back with ``weights_only=True`` through
:func:`unip_hub.checkpoints.read_checkpoint` -- no pickled code is ever run on resume.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Reads a training state written by :func:`~unip_hub.utils.atomic.save_torch_atomic` (``weights_only``, CPU).

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
