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


@pytest.fixture
def one_thread():
    """One torch intra-op thread for tests of tiny tensors (on a loaded 2-core machine, OpenMP barriers between two
    threads made their steps many times slower); the previous count is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
