"""UNIP inside Hugging Face transformers: UperNetForSemanticSegmentation on the LL-FPN, a few training steps on
synthetic thermal scenes, save_pretrained / AutoModelForSemanticSegmentation round trip.

    python examples/transformers_upernet.py --out runs/upernet_hf        # UNIP-S, random backbone
    python examples/transformers_upernet.py --checkpoint iter_9800.pth   # research-code (mmseg) segmenter -> HF
    python examples/transformers_upernet.py --quick --out /tmp/x         # tiny model (used by the tests)
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch
from transformers import AutoModelForSemanticSegmentation, UperNetForSemanticSegmentation

from unip_hub.data.synthetic import SYNTHETIC_CLASSES, scene_batch
from unip_hub.integrations.transformers import upernet_config, upernet_from_checkpoint


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="unip_vit_small")
    p.add_argument("--checkpoint", default=None, help="a trained segmenter (mmseg or unip) to convert instead")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--out", default=None, help="folder for save_pretrained (default: a temporary folder)")
    p.add_argument("--quick", action="store_true", help="tiny model, 2 steps, 64 px")
    args = p.parse_args(argv)
    steps, size = (2, 64) if args.quick else (args.steps, args.size)
    torch.manual_seed(0)

    if args.checkpoint:
        model = upernet_from_checkpoint(args.checkpoint)
        print(f"loaded {args.checkpoint}: {model.config.num_labels} classes")
    else:
        tiny = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=64) if args.quick else {}
        labels = dict(enumerate(SYNTHETIC_CLASSES))
        model = UperNetForSemanticSegmentation(upernet_config(args.arch, num_labels=len(labels), id2label=labels,
                                                              **tiny))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    rng = np.random.default_rng(0)
    model.train()
    losses = []
    for step in range(steps):
        x, y = scene_batch(rng, 2, size)
        if args.checkpoint:
            y = y.clamp(max=model.config.num_labels - 1)
        out = model(pixel_values=x, labels=y)  # loss = CE(decode) + 0.4 * CE(auxiliary FCN), ignore 255
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
        print(f"step {step + 1}/{steps}: loss {out.loss.item():.3f}")

    model.eval()
    out_dir = args.out or tempfile.mkdtemp(prefix="unip_upernet_")
    model.save_pretrained(out_dir)
    again = AutoModelForSemanticSegmentation.from_pretrained(out_dir).eval()
    x, _ = scene_batch(rng, 1, size)
    with torch.no_grad():
        diff = (again(pixel_values=x).logits - model(pixel_values=x).logits).abs().max().item()
    print(f"saved to {out_dir}; reloaded {type(again).__name__}, max logit difference {diff:.2e}")
    return {"first_loss": losses[0], "last_loss": losses[-1], "reload_diff": diff}


if __name__ == "__main__":
    main()
