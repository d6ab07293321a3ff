"""``unip attention-patterns``: per-layer NMI / attention distance of a ViT, its pattern bands and query maps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_QUERIES = ((0.5, 0.5), (0.25, 0.25), (0.75, 0.7))


def _load_model(args: argparse.Namespace):
    from unip_hub.hub.teachers import load_vit

    last = args.last_heads
    if last is not None and last != "distilled":
        last = int(last)
    return load_vit(args.model, arch=args.arch, last_heads=last, pretrained=not args.random_init,
                    drop_dist_token=args.drop_dist_token)


def _timm_raw(name: str, pretrained: bool, img_size: int):
    """timm models the UNIP ViT cannot express (register tokens, ...) are profiled as they are."""
    import timm

    return timm.create_model(name, pretrained=pretrained, num_classes=0, img_size=img_size).eval()


def run_attention_patterns(args: argparse.Namespace) -> dict:
    """Runs the analysis and writes the files; returns the JSON summary."""
    import torch

    from unip_hub.analysis import attention_profile, query_attention, select_distill_layer
    from unip_hub.analysis.images import list_images, load_gray_batch
    from unip_hub.analysis.plots import plot_profile, plot_query_attention
    from unip_hub.checkpoints import CheckpointError
    from unip_hub.train.checkpointing import atomic_write_text

    out = Path(args.out)
    files = list_images(args.images, args.max_images)
    x, grays = load_gray_batch(files, args.img_size)
    try:
        model = _load_model(args)
    except (CheckpointError, ValueError):
        if not args.model.startswith("timm:"):
            raise
        model = _timm_raw(args.model[len("timm:"):], not args.random_init, args.img_size)
    model = model.to(args.device).eval()
    batches = list(torch.split(x, args.batch_size))
    profile = attention_profile(model, batches, name=args.model, device=args.device)
    layer = select_distill_layer(profile, args.target)
    summary = profile.to_dict() | {"target_nmi": args.target, "selected_layer": layer,
                                   "images": [str(f) for f in files]}
    atomic_write_text(json.dumps(summary, indent=2), out / "attention_patterns.json")
    atomic_write_text(profile.to_csv(), out / "attention_patterns.csv")
    plot_profile(profile, out / "attention_patterns.png", target=args.target, selected=layer)
    depth = len(profile.layers)
    shown = sorted({1, max(1, depth // 2), layer, depth})
    n_show = min(args.num_maps, len(files))
    maps = query_attention(model, x[:n_show].to(args.device), shown, DEFAULT_QUERIES)
    for i in range(n_show):
        plot_query_attention(grays[i], {k: v[i] for k, v in maps.items()}, DEFAULT_QUERIES,
                             out / "maps" / f"{i:02d}_{files[i].stem}.png", title=files[i].name)
    print(f"{'layer':>5} {'heads':>5} {'NMI':>8} {'distance':>9}  pattern")
    for r in profile.layers:
        mark = "  <- closest to target" if r.layer == layer else ""
        print(f"{r.layer:>5} {r.heads:>5} {r.nmi:>8.4f} {r.distance:>9.3f}  {r.pattern}{mark}")
    print(f"wrote {out}/attention_patterns.{{csv,json,png}} and {n_show} attention-map figures in {out}/maps")
    return summary


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
    p.set_defaults(func=lambda a: (run_attention_patterns(a), 0)[1])
