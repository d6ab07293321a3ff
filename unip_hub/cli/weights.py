"""``unip list``, ``unip info``, ``unip convert``, ``unip hash``, ``unip push``: the weights registry and files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cmd_list(args: argparse.Namespace) -> int:
    from unip_hub.hub.registry import list_entries, list_models

    print(f"{'architecture':<16} {'weights':<28} {'teacher (layer)':<24} {'FT mIoU':>8} {'LP mIoU':>8}")
    for arch in list_models():
        entries = list_entries(arch)
        if not entries:
            print(f"{arch:<16} {'(no released weights)':<28}")
        for e in entries:
            print(f"{arch:<16} {e.name:<28} {e.teacher.split()[0] + f' L{e.teacher_layer}':<24} "
                  f"{e.paper_miou_finetune:>8.1f} {e.paper_miou_linear_probe:>8.1f}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from unip_hub.hub.registry import describe_name

    if Path(args.name).exists():
        from unip_hub.hub.hf_folders import describe_checkpoint

        info = describe_checkpoint(args.name)
    else:
        info = describe_name(args.name)
    print(json.dumps(info, indent=2, default=list))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from unip_hub.hub.hf_folders import convert_to_hf_folder, describe_checkpoint

    out = convert_to_hf_folder(args.input, args.output, arch=args.arch, last_heads=args.last_heads)
    record = describe_checkpoint(out)["distillation"]
    heads = f"{record['last_heads']} (from the {record['source']})" if record else "not recorded"
    print(f"wrote {out}/model.safetensors, config.json and README.md (distilled last-block heads: {heads}); load "
          f"with UnipViT.from_pretrained('{out}') or unip_vit_*(weights='{out}')")
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
    p = sub.add_parser("info", help="show an architecture, a released checkpoint (arch.tag) or a weight file as "
                       "JSON (shape, distilled last-block heads, teacher and layer)")
    p.add_argument("name", help="unip_vit_small, unip_vit_small.mae_large, or a checkpoint file / folder")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("convert", help="official .pth -> Hugging Face folder (safetensors, config, model card)")
    p.add_argument("input", help="checkpoint file (.pth, .safetensors, mmseg)")
    p.add_argument("output", help="new folder to write")
    p.add_argument("--arch", default=None, help="architecture (default: inferred from the weights)")
    p.add_argument("--last-heads", type=int, default=None, help="distilled last-block heads (default: the file's "
                   "args.last_heads, the registry, or a '_by_<teacher>_<size>' file name)")
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
