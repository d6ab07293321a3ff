"""All-or-none outputs of one raster: every file is written under a hidden temporary name in the output folder and
renamed onto its final name only when all of them are done; on an error or Ctrl-C the temporaries are removed, so
nothing half-written is ever left under a final name. A re-run first removes what an earlier killed run left behind
(its temporaries), and at the end the outputs of an earlier run that this run does not write (e.g. a hotspot layer)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Staging"]

_MARK = ".unip-geo-tmp"


class Staging:
    """Temporary names for the final files of one raster; use as a context manager.

    Args:
        out_dir: The output folder (created).
        stem: The raster's output name; temporaries are ``.<stem>.<random>.unip-geo-tmp<suffix>``.
        owned: Every final name this kind of run can write for ``stem`` (stale ones are removed on success).
    """

    def __init__(self, out_dir: str | os.PathLike, stem: str, owned: Iterable[Path] = ()) -> None:
        self.out_dir = Path(out_dir)
        self.stem = stem
        self.owned = list(owned)
        self.staged: dict[Path, Path] = {}  # final -> temporary
        self.scratch: list[Path] = []

    def __enter__(self) -> Staging:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.out_dir.glob(f".{self.stem}.*{_MARK}*"):  # an earlier run killed mid-way
            leftover.unlink(missing_ok=True)
        return self

    def _name(self, suffix: str) -> Path:
        return self.out_dir / f".{self.stem}.{uuid.uuid4().hex[:8]}{_MARK}{suffix}"

    def path(self, final: str | os.PathLike) -> Path:
        """A temporary path (same suffix, not created) that becomes ``final`` on success."""
        final = Path(final)
        tmp = self._name(final.suffix)
        self.staged[final] = tmp
        return tmp

    def scratch_path(self, suffix: str) -> Path:
        """A temporary path removed at the end whatever happens."""
        tmp = self._name(suffix)
        self.scratch.append(tmp)
        return tmp

    def __exit__(self, kind: type | None, error: BaseException | None, tb: object) -> None:
        try:
            if kind is None:
                for final, tmp in self.staged.items():
                    if not tmp.exists():
                        raise FileNotFoundError(f"{final}: its temporary file {tmp.name} was never written")
                for final, tmp in self.staged.items():
                    os.replace(tmp, final)
                for stale in self.owned:
                    if stale not in self.staged:
                        stale.unlink(missing_ok=True)
        finally:
            for tmp in [*self.staged.values(), *self.scratch]:
                tmp.unlink(missing_ok=True)
