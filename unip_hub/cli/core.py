"""``unip list``, ``unip info``, ``unip convert``, ``unip hash``, ``unip push``: the weights registry and files."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path


def _cmd_list(args: argparse.Namespace) -> int:
    from unip_hub.hub.registry import get_weights_entry, list_models, list_weights

    print(f"{'architecture':<16} {'weights':<28} {'teacher (layer)':<24} {'FT mIoU':>8} {'LP mIoU':>8}")
    for arch in list_models():
        entries = [get_weights_entry(arch, name) for name in list_weights(arch)]
        if not entries:
            print(f"{arch:<16} {'(no released weights)':<28}")
        for e in entries:
            print(f"{arch:<16} {e.name:<28} {e.teacher.split()[0] + f' L{e.teacher_layer}':<24} "
                  f"{e.paper_miou_finetune:>8.1f} {e.paper_miou_linear_probe:>8.1f}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from unip_hub.hub.registry import get_weights_entry, list_models, list_weights
    from unip_hub.models.vit import ARCHS

    name = args.name
    if name in list_models():
        spec = ARCHS[name]
        info = {"arch": name, "embed_dim": spec.embed_dim, "depth": spec.depth, "num_heads": spec.num_heads,
                "weights": list_weights(name)}
    else:
        arch, _, tag = name.partition(".")
        if not tag:
            raise ValueError(f"unknown name {name!r}: give an architecture ({list_models()}) or arch.tag")
        entry = get_weights_entry(arch, tag)
        info = entry.to_dict() | {"url": entry.url}
    print(json.dumps(info, indent=2, default=list))
    return 0


def convert_checkpoint(src: str | Path, out_dir: str | Path, arch: str | None = None,
                       last_heads: int | None = None) -> Path:
    """Turns an official ``.pth`` (or any supported file) into a Hugging Face folder (weights only).

    The architecture is inferred from the weights' shapes unless given; the distilled last-block head count
    comes from the registry (official file name) or ``last_heads``. The folder is written to a temporary
    sibling and renamed into place, so a failure leaves nothing behind.
    """
    from unip_hub.checkpoints import backbone_state_dict, load_state_dict_strict, read_checkpoint
    from unip_hub.hub.registry import find_entry_by_filename
    from unip_hub.models.vit import ARCHS, build_vit

    src, out_dir = Path(src), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new folder")
    sd = backbone_state_dict(read_checkpoint(src))
    if "cls_token" not in sd or "pos_embed" not in sd:
        raise ValueError(f"{src} holds no ViT backbone (no cls_token/pos_embed)")
    width = sd["cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    entry = find_entry_by_filename(src.name)
    if arch is None:
        found = [a for a, s in ARCHS.items() if s.embed_dim == width and s.depth == depth]
        if not found:
            raise ValueError(f"no UNIP architecture has width {width} and depth {depth}; pass --arch")
        arch = found[0]
    distilled = last_heads or (entry.last_heads if entry else None)
    side = int((sd["pos_embed"].shape[1] - 1) ** 0.5)
    model = build_vit(arch, img_size=16 * side, in_chans=sd["patch_embed.proj.weight"].shape[1],
                      distilled_last_heads=distilled)
    load_state_dict_strict(model, sd, source=str(src))
    if entry is not None:
        model.pretrained_cfg = entry.to_dict()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _cmd_convert(args: argparse.Namespace) -> int:
    out = convert_checkpoint(args.input, args.output, arch=args.arch, last_heads=args.last_heads)
    print(f"wrote {out}/model.safetensors, config.json and README.md; load with "
          f"UnipViT.from_pretrained('{out}') or unip_vit_*(weights='{out}')")
    return 0


def _cmd_hash(args: argparse.Namespace) -> int:
    from unip_hub.checkpoints import sha256sum

    for path in args.files:
        print(f"{sha256sum(path)}  {path}")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from unip_hub.hub.publish import push_converted

    url = push_converted(args.folder, args.repo_id, private=args.private, branch=args.revision)
    print(f"pushed {args.folder} to {url}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the registry and file subcommands."""
    p = sub.add_parser("list", help="list architectures and released weights")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("info", help="show an architecture or a released checkpoint (arch.tag) as JSON")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("convert", help="official .pth -> Hugging Face folder (safetensors, config, model card)")
    p.add_argument("input", help="checkpoint file (.pth, .safetensors, mmseg)")
    p.add_argument("output", help="new folder to write")
    p.add_argument("--arch", default=None, help="architecture (default: inferred from the weights)")
    p.add_argument("--last-heads", type=int, default=None, help="distilled last-block heads, if not an official file")
    p.set_defaults(func=_cmd_convert)
    p = sub.add_parser("hash", help="print sha256 of weight files (to record in weights/registry.json)")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=_cmd_hash)
    p = sub.add_parser("push", help="publish a converted folder to the Hugging Face Hub")
    p.add_argument("folder")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing; default main)")
    p.set_defaults(func=_cmd_push)
