"""Run logs: one CSV file (always) and TensorBoard scalars (when ``tensorboard`` is installed).

``log.csv`` has one row per logged training window (``kind=train``) and per evaluation (``kind=eval``). On resume,
rows after the resumed iteration (written by the interrupted run after its last checkpoint) are dropped first, so
the file always describes one consistent run.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from unip_hub.utils.atomic import write_text_atomic

FIELDS = ("iteration", "kind", "lr", "loss", "loss_decode", "loss_aux", "sec_per_iter", "mIoU", "mAcc", "aAcc")


def read_log(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``log.csv`` as dicts of strings (empty cells are empty strings)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class RunLogger:
    """Appends rows to ``<out_dir>/log.csv`` and scalars to ``<out_dir>/tb`` (main process only).

    Args:
        out_dir: Run folder.
        start_iteration: Iteration the run (re)starts from; later rows of an existing log are dropped.
        tensorboard: Also write TensorBoard events.
        enabled: False on non-main processes (then every method is a no-op).
        fields: The CSV columns (default :data:`FIELDS`, segmentation's; detection has its own).
    """

    def __init__(self, out_dir: str | Path, start_iteration: int = 0, tensorboard: bool = True,
                 enabled: bool = True, fields: Sequence[str] = FIELDS) -> None:
        self.path = Path(out_dir) / "log.csv"
        self.enabled = enabled
        self.fields = tuple(fields)
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_log(self.path) if int(r["iteration"]) <= start_iteration] if self.path.exists() else []
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields)
        w.writeheader()
        w.writerows({k: r.get(k, "") for k in self.fields} for r in kept)
        write_text_atomic(buf.getvalue(), self.path)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("tensorboard is not installed: logging to log.csv only (pip install 'unip[train]' for "
                      "TensorBoard)", file=sys.stderr)
            else:
                self.writer = SummaryWriter(str(self.path.parent / "tb"), purge_step=start_iteration + 1)

    def log(self, iteration: int, kind: str, values: dict[str, float]) -> None:
        """Adds one row (``kind`` ``train`` or ``eval``) and its scalars."""
        if not self.enabled:
            return
        values = {k: float(v) for k, v in values.items() if k in self.fields and isinstance(v, (int, float))}
        row = {"iteration": iteration, "kind": kind}
        row.update({k: f"{v:.6g}" for k, v in values.items()})
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow({k: row.get(k, "") for k in self.fields})
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{kind}/{k}", v, iteration)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
