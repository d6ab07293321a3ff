"""UNIP as a segmentation-models-pytorch encoder: smp.UPerNet trained a few steps on synthetic thermal scenes.

    python examples/smp_upernet.py                                      # UNIP-S, random backbone
    python examples/smp_upernet.py --weights unip_vit_small_by_mae_large.pth --steps 200
    python examples/smp_upernet.py --quick                              # tiny model (used by the tests)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from unip_hub.data.synthetic import SYNTHETIC_CLASSES, scene_batch
from unip_hub.integrations.smp import register_encoder


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="unip_vit_small")
    p.add_argument("--weights", default=None, help="released tag (mae_large) or file; default random")
    p.add_argument("--decoder", default="UPerNet", help="any SMP decoder class: UPerNet, FPN, Unet, DeepLabV3Plus...")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--out", default=None, help="folder to save the trained model to (smp save_pretrained)")
    p.add_argument("--quick", action="store_true", help="tiny model, 3 steps, 64 px")
    args = p.parse_args(argv)
    tiny = dict(embed_dim=64, depth=2, num_heads=2, img_size=64) if args.quick else {}
    steps, size = (3, 64) if args.quick else (args.steps, args.size)

    torch.manual_seed(0)
    name = register_encoder("unip_example", args.arch, weights=args.weights, **tiny)
    model = getattr(smp, args.decoder)(encoder_name=name, encoder_weights=None, classes=len(SYNTHETIC_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4 if args.weights else 1e-3, weight_decay=0.05)
    rng = np.random.default_rng(0)
    losses = []
    model.train()
    for step in range(steps):
        x, y = scene_batch(rng, 2, size)
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        print(f"step {step + 1}/{steps}: loss {loss.item():.3f}")
    if args.out:
        model.save_pretrained(args.out)
        again = smp.from_pretrained(args.out)
        print(f"saved to {Path(args.out).resolve()} and reloaded ({type(again).__name__})")
    return {"first_loss": losses[0], "last_loss": losses[-1]}


if __name__ == "__main__":
    main()
