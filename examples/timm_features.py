"""UNIP through timm: a registered model, infrared preprocessing and LL-FPN feature maps.

    python examples/timm_features.py                                   # UNIP-S, random weights
    python examples/timm_features.py --weights unip_vit_small_by_mae_large.pth
    python examples/timm_features.py --quick                           # tiny model (used by the tests)
"""

from __future__ import annotations

import argparse

import numpy as np
import timm
import torch

import unip_hub  # noqa: F401  (registers unip_vit_*_patch16_224 with timm)
from unip_hub.data.synthetic import make_scene


def main(argv: list[str] | None = None) -> dict[str, list]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="unip_vit_small_patch16_224.mae_large")
    p.add_argument("--weights", default=None, help="official .pth or converted folder (default: random weights)")
    p.add_argument("--mode", default="llfpn", choices=["llfpn", "multi", "blocks"])
    p.add_argument("--quick", action="store_true", help="tiny 2-block model, 64 px input")
    args = p.parse_args(argv)

    tiny = dict(embed_dim=64, depth=4, num_heads=2) if args.quick else {}
    extra = dict(out_indices=(1, 3)) if args.mode == "blocks" and args.quick else {}
    pretrained = dict(pretrained=True, pretrained_cfg_overlay=dict(file=args.weights)) if args.weights else {}
    model = timm.create_model(args.model, features_only=True, feature_mode=args.mode, **pretrained, **tiny, **extra)
    model.eval()
    data = timm.data.resolve_data_config({}, model=model)  # infrared mean/std, bicubic
    print(f"data config: mean {data['mean']}, std {data['std']}, input {data['input_size']}")

    size = 64 if args.quick else 224
    gray, _ = make_scene(size, size, np.random.default_rng(0))  # (H, W) uint8 synthetic thermal frame
    x = torch.from_numpy(gray).float().div(255).expand(3, -1, -1)  # gray copied to 3 channels, 0-1
    x = ((x - torch.tensor(data["mean"])[:, None, None]) / torch.tensor(data["std"])[:, None, None])[None]
    with torch.no_grad():
        feats = model(x)
    info = {"channels": model.feature_info.channels(), "reduction": model.feature_info.reduction(),
            "shapes": [list(f.shape) for f in feats]}
    for c, r, s in zip(info["channels"], info["reduction"], info["shapes"]):
        print(f"stride {r:>2}: {c} channels, map {s}")
    return info


if __name__ == "__main__":
    main()
