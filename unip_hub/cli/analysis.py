"""``unip attention-patterns``: per-layer NMI / attention distance of a ViT, its pattern bands and query maps."""

from __future__ import annotations

import argparse


def _cmd_attention_patterns(args: argparse.Namespace) -> int:
    from unip_hub.analysis.pattern_report import attention_patterns_report

    attention_patterns_report(args.model, args.images, args.out, arch=args.arch, last_heads=args.last_heads,
                              img_size=args.img_size, max_images=args.max_images, batch_size=args.batch_size,
                              num_maps=args.num_maps, target=args.target, device=args.device,
                              pretrained=not args.random_init, drop_dist_token=args.drop_dist_token)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``attention-patterns``."""
    p = sub.add_parser("attention-patterns", help="per-layer NMI / attention distance / pattern of a ViT, with plots",
                       description="Profiles the attention of every layer of a ViT on a folder of images: NMI "
                       "(local / hybrid / global), mean attention distance, the layer NMI-HAD would distil, plots.")
    p.add_argument("--model", required=True, help="registry name (unip_vit_small.mae_large), a checkpoint file or "
                   "folder (UNIP, MAE, iBOT, DINO, DeiT), or timm:NAME")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--arch", default=None, help="vit_large / vit_base / ... for checkpoint files (default: inferred)")
    p.add_argument("--last-heads", default=None, help="last-block heads of a distilled student: an int or "
                   "'distilled' (default for registry names)")
    p.add_argument("--img-size", type=int, default=224, help="square input size, a multiple of 16 (default 224)")
    p.add_argument("--max-images", type=int, default=64, help="images used for the statistics (default 64)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-maps", type=int, default=3, help="images drawn with query attention maps (default 3)")
    p.add_argument("--target", type=float, default=0.09, help="target NMI for the layer choice (default 0.09)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--random-init", action="store_true", help="timm: do not download weights (testing)")
    p.add_argument("--drop-dist-token", action="store_true", help="accept distilled DeiT files")
    p.set_defaults(func=_cmd_attention_patterns)
