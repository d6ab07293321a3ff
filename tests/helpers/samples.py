"""Where the real thermal samples are: ``shared/thermal-samples`` beside the checkout (``../shared``) or inside it.

Tests that read them skip when the folder is absent (a plain clone has no ``../shared``)."""

from __future__ import annotations

from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def shared_samples() -> Path | None:
    """The samples folder, or None when absent."""
    for candidate in (_REPO.parent / "shared" / "thermal-samples", _REPO / "shared" / "thermal-samples"):
        if candidate.is_dir():
            return candidate
    return None


SAMPLES = shared_samples() or _REPO.parent / "shared" / "thermal-samples"
"""The samples folder (its usual place when absent, so paths under it simply do not exist)."""
