"""UNIP as a torchvision detection backbone: Faster R-CNN (or Mask R-CNN) trained a few steps on synthetic
thermal scenes, with boxes and masks taken from the connected person / car blobs of the scene labels.

    python examples/detection_faster_rcnn.py                      # UNIP-S + LL-FPN + FPN, random backbone
    python examples/detection_faster_rcnn.py --mask --weights unip_vit_small_by_mae_large.pth --steps 200
    python examples/detection_faster_rcnn.py --quick              # tiny model (used by the tests)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torchvision.models.detection import FasterRCNN, MaskRCNN

from unip_hub.data.instances import instances_from_label
from unip_hub.data.synthetic import SYNTHETIC_CLASSES, make_scene
from unip_hub.integrations.torchvision import IMAGE_MEAN, IMAGE_STD, build_backbone

DETECT = ("person", "car")


def sample(rng: np.random.Generator, height: int, width: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One scene with at least one object: image (3, H, W) in 0-1 and its detection target."""
    classes = [SYNTHETIC_CLASSES.index(c) for c in DETECT]
    while True:
        gray, label = make_scene(height, width, rng)
        target = instances_from_label(label, classes, min_area=8)
        if len(target["boxes"]):
            return torch.from_numpy(gray).float().div(255).expand(3, -1, -1), target


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="unip_vit_small")
    p.add_argument("--weights", default=None, help="released tag (mae_large) or file; default random")
    p.add_argument("--mask", action="store_true", help="Mask R-CNN instead of Faster R-CNN")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="tiny model, 2 steps, 64x96 scenes")
    args = p.parse_args(argv)
    tiny = dict(embed_dim=64, depth=2, num_heads=2, img_size=64) if args.quick else {}
    steps, (h, w) = (2, (64, 96)) if args.quick else (args.steps, (256, 320))
    torch.manual_seed(0)

    backbone = build_backbone(args.arch, weights=args.weights, fpn=True, out_channels=64 if args.quick else 256,
                              **tiny)
    detector = MaskRCNN if args.mask else FasterRCNN
    budget = dict(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=200,
                  rpn_post_nms_top_n_test=50, box_batch_size_per_image=64) if args.quick else {}
    model = detector(backbone, num_classes=len(DETECT) + 1, min_size=h, max_size=w, image_mean=IMAGE_MEAN,
                     image_std=IMAGE_STD, **budget)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    rng = np.random.default_rng(0)
    totals = []
    for step in range(steps):
        images, targets = zip(*(sample(rng, h, w) for _ in range(2)))
        model.train()
        losses = model(list(images), list(targets))
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
        print(f"step {step + 1}/{steps}: " + ", ".join(f"{k} {v.item():.3f}" for k, v in losses.items()))
    model.eval()
    with torch.no_grad():
        pred = model([sample(rng, h, w)[0]])[0]
    print(f"{type(model).__name__}: {len(pred['boxes'])} detections on a new scene")
    return {"first_loss": totals[0], "last_loss": totals[-1], "detections": float(len(pred["boxes"]))}


if __name__ == "__main__":
    main()
