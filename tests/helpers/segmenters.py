"""Shared helpers of the segmenter tests: a tiny config and checkpoints in the research code's mmseg layout."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from unip_hub.hub.segmenters import create_segmenter

TINY = dict(img_size=128, embed_dim=64, depth=2, num_heads=2)  # 1 + 8x8 trained position embedding
NUM_CLASSES = 5
CLASSES = ("background", "person", "car", "road", "tree")
PALETTE = [[0, 0, 0], [220, 20, 60], [0, 0, 142], [128, 64, 128], [107, 142, 35]]


def tiny_segmenter(seed: int = 0, **kwargs):
    """A tiny LL-FPN/UPerNet segmenter with every weight random, BN running stats and layer-scale gammas included."""
    torch.manual_seed(seed)
    seg = create_segmenter("unip_vit_tiny", num_classes=NUM_CLASSES, **{**TINY, **kwargs})
    with torch.no_grad():
        for name, t in seg.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith("running_mean") or name.endswith(".gamma") or name.endswith("pos_embed"):
                t.normal_(0, 0.5)
            elif name.endswith("num_batches_tracked"):
                t.fill_(100)
            elif t.is_floating_point() and name.endswith(("bn.weight", "bn.bias", "fpn1.1.weight", "fpn1.1.bias")):
                t.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    return seg.eval()


def to_mmseg_state_dict(seg, with_norm: bool = True) -> dict[str, torch.Tensor]:
    """Our names -> the research code's: ``neck.fpnK`` inside the backbone, layer scale as ``gamma_1/gamma_2``."""
    out = {}
    for k, v in seg.state_dict().items():
        if k.startswith("neck."):
            k = "backbone." + k[len("neck."):]
        k = re.sub(r"\.ls([12])\.gamma$", r".gamma_\1", k)
        if not with_norm and k.startswith("backbone.norm."):
            continue
        out[k] = v.clone()
    return out


def write_mmseg_checkpoint(seg, path: Path, with_norm: bool = True) -> Path:
    """An mmseg-style checkpoint file: state_dict + meta with CLASSES/PALETTE + a (tensor-only) optimizer."""
    obj = {
        "meta": {"CLASSES": CLASSES, "PALETTE": PALETTE, "iter": 14400, "mmseg_version": "0.11.0"},
        "state_dict": to_mmseg_state_dict(seg, with_norm),
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
    }
    torch.save(obj, path)
    return path
