"""Atomic writes: a reader (or a kill at any moment) sees the old file or the complete new one, never a part.

Every output of the package goes through here: checkpoints, PNG masks, plots, JSON/CSV reports, exported graphs,
model cards and whole ``save_pretrained`` folders. A file is written to a hidden temporary sibling, flushed and
``fsync``-ed, then moved onto its name with ``os.replace``; a folder is filled under a hidden temporary name and
renamed into place. On any error (``KeyboardInterrupt`` included) the temporary is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_path", "save_torch_atomic", "write_text_atomic"]


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (same suffix) to write to; moves it onto ``path`` on success.

    The suffix is kept so that writers choosing a format by extension (PIL, matplotlib, ONNX) still do.

    Args:
        path: Final file name; its parent folder is created.
        fsync: Flush the written file to disk before the rename.

    Example:
        >>> with atomic_path("out/mask.png") as tmp:
        ...     image.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically and returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` atomically; a ``.safetensors`` path is written with safetensors (flat state dict)."""
    import torch

    with atomic_path(path) as tmp:
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().cpu() for k, v in obj.items()}, str(tmp))
        else:
            torch.save(obj, tmp)
    return Path(path)


@contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``path``; renames it to ``path`` when the block succeeds.

    Args:
        path: Final folder. An existing empty folder is replaced; a non-empty one only with ``overwrite``
            (it is moved aside first and deleted after the rename, so ``path`` is never missing for long).
        overwrite: Replace an existing non-empty folder.

    Raises:
        FileExistsError: ``path`` exists, is not empty and ``overwrite`` is false (raised before anything is
            written).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; choose another folder or remove it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
