"""Checkpoints in the exact released layouts, written locally (no network in tests)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from unip_hub.models.vit import build_vit

_DEFAULT_ARGS = dict(model="vit_tiny_patch16", batch_size=256, epochs=100, lr=None, blr=1.5e-4, teacher_layer=18,
                     input_size=224, data_path="/data/InfMix", output_dir="./out")


def make_official_checkpoint(path: Path, arch: str = "unip_vit_tiny", last_heads: int = 16, seed: int = 0,
                             args: dict | None = None, with_args: bool = True) -> dict:
    """Writes a file laid out like ``unip_vit_*_by_*_large.pth``; returns its model state dict.

    Random weights (non-trivial biases and norms) under ``model``, plus ``optimizer``/``epoch``/``scaler`` and
    ``args`` as an ``argparse.Namespace``, as the research distillation script saves them. ``args`` replaces the
    default arguments (e.g. the research script's ``last_heads`` / ``teacher_model`` / ``intermediate``);
    ``with_args=False`` leaves them out.
    """
    torch.manual_seed(seed)
    model = build_vit(arch, last_heads=last_heads)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    obj = {
        "model": sd,
        "optimizer": opt.state_dict(),
        "epoch": 99,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                   "_growth_tracker": 0},
        "args": argparse.Namespace(**(_DEFAULT_ARGS if args is None else args)),
    }
    if not with_args:
        del obj["args"]
    torch.save(obj, path)
    return sd
