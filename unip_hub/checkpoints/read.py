"""Safe reading of weight files: ``.pth`` via ``torch.load(weights_only=True)``, safetensors, Hugging Face folders.

The released UNIP ``.pth`` files hold ``{model, optimizer, epoch, scaler, args}`` with ``args`` an
``argparse.Namespace``; that class (and only it) is allow-listed. Anything else pickled in a file is refused:
no checkpoint is ever fully unpickled, so a malicious file can run nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

SAFETENSORS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class CheckpointError(ValueError):
    """A weight file that cannot be used: corrupt, truncated, unsafe, of an unknown layout or with wrong keys."""


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it may be truncated or corrupt: "
                              "delete it and download or convert it again") from e


def _read_pickle(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it contains pickled objects other than tensors, containers and "
            f"argparse.Namespace, and unpickling them could run arbitrary code ({str(e).splitlines()[-1]}). "
            "If you trust the file, re-save only its state dict (torch.save(sd, ...)) or convert it to safetensors."
        ) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e}); it may be "
                              "truncated or corrupt: delete it and download it again") from e


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Reads a weight file or a Hugging Face model folder without executing any pickled code.

    Args:
        path: A ``.pth``/``.pt``/``.bin`` file, a ``.safetensors`` file, or a folder with ``model.safetensors``.

    Returns:
        The raw object in the file (a dict); safetensors and folders give a flat state dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is corrupt, truncated, unsafe or not a dict.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        weights = path / SAFETENSORS_NAME
        if not weights.is_file():
            raise CheckpointError(f"{path} is a folder without {SAFETENSORS_NAME}; expected a Hugging Face model "
                                  "folder as written by save_pretrained or `unip convert`")
        return _read_safetensors(weights)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): delete it and download it again")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    obj = _read_pickle(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict or a checkpoint dict")
    return obj
