"""Shared fixtures: checkpoints in the exact released layouts, made locally (no network in tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.checkpoints import make_official_checkpoint


@pytest.fixture(scope="session")
def official_tiny(tmp_path_factory) -> tuple[Path, dict]:
    """(path, state dict) of a released-layout UNIP-T checkpoint named like the official MAE-L file."""
    path = tmp_path_factory.mktemp("official") / "unip_vit_tiny_by_mae_large.pth"
    return path, make_official_checkpoint(path)
