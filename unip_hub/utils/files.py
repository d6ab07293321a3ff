"""Listing input files: one lister for datasets, ``unip segment``, the attention analysis and the teachers."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from unip_hub.constants import IMAGE_EXTENSIONS

__all__ = ["list_files"]


def list_files(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    *,
    recursive: bool = True,
    limit: int | None = None,
) -> list[Path]:
    """Files with one of ``extensions`` (case-insensitive) under folders, plus files named directly, sorted.

    Hidden files and folders (names starting with ``.``, e.g. our own temporaries) are skipped.

    Args:
        paths: A file or folder, or several.
        extensions: Accepted suffixes, with the dot.
        recursive: Descend into sub-folders.
        limit: Keep at most this many (after sorting).

    Raises:
        FileNotFoundError: A named path does not exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    wanted = {e.lower() for e in extensions}
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            pattern = p.rglob("*") if recursive else p.glob("*")
            found += sorted(f for f in pattern if f.is_file() and f.suffix.lower() in wanted
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return found[:limit] if limit is not None else found
