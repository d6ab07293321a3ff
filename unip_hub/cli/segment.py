"""``unip segment``: class masks, colour masks and overlays for thermal images with a trained segmenter."""

from __future__ import annotations

import argparse
import json
import sys

from unip_hub.constants import SLIDE_CROP, SLIDE_STRIDE

KINDS = ("masks", "color", "overlay")


def _cmd_segment(args: argparse.Namespace) -> int:
    from unip_hub.inference.outputs import SegmentSettings, segment_paths

    kinds = [k for k in KINDS if k not in (args.skip or [])]
    load = {"arch": args.arch, "num_classes": args.num_classes, "head": args.head, "neck": args.neck}
    model, records = segment_paths(
        args.model, args.inputs, args.out, load, args.device, SegmentSettings(kinds, args.alpha, not args.quiet),
        mode=args.mode, crop_size=args.crop_size, stride=args.stride, batch_windows=args.batch_windows,
        scale=tuple(args.scale) if args.scale else None)
    failed = [r for r in records if "error" in r]
    for r in failed:
        print(f"unip segment: error: {r['error']} (nothing written for it)", file=sys.stderr)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(f"segmented {len(records) - len(failed)} of {len(records)} image(s) with {model.config.get('arch')} "
              f"({model.num_classes} classes, {args.mode}) -> {args.out}/{{{','.join(kinds)}}}")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``unip segment``."""
    p = sub.add_parser(
        "segment", help="segment thermal images with a trained segmenter checkpoint",
        description="Writes, per input image, the raw class-index PNG (masks/), the palette rendering (color/) and "
                    "an overlay on the input (overlay/), all at the input's size; an unreadable input is reported "
                    "(exit status 1) and gets no file. Inputs: 8-bit gray, 16-bit radiometric, 4-channel MFNet "
                    "(thermal = channel 3), RGB JPEG, .npy; folders are searched "
                    "recursively.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders")
    p.add_argument("--model", required=True, help="segmenter checkpoint: ours (.pth/.safetensors) or an mmseg "
                   "checkpoint of the research code")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--arch", default=None, help="backbone (unip_vit_tiny/small/base/large) when the file does not "
                   "say it")
    p.add_argument("--num-classes", type=int, default=None, help="number of classes when the file does not say it")
    p.add_argument("--head", choices=("upernet", "linear"), default=None, help="default: read from the file")
    p.add_argument("--neck", choices=("last", "multi"), default=None,
                   help="default: the file's meta, else 'last' (LL-FPN; mmseg files cannot tell)")
    p.add_argument("--mode", choices=("whole", "slide"), default="slide",
                   help="whole image in one pass, or 512x512 sliding windows as in UNIP's evaluation (default)")
    p.add_argument("--crop-size", type=int, default=SLIDE_CROP, help=f"sliding-window side (default {SLIDE_CROP})")
    p.add_argument("--stride", type=int, default=SLIDE_STRIDE, help=f"sliding-window step (default {SLIDE_STRIDE})")
    p.add_argument("--batch-windows", type=int, default=4, help="windows per forward pass (default 4)")
    p.add_argument("--scale", type=int, nargs=2, default=None, metavar=("LONG", "SHORT"),
                   help="rescale to fit LONG x SHORT first (UNIP's test pipeline: 2048 512); masks keep the input "
                        "size")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the colour mask (default 0.5)")
    p.add_argument("--skip", nargs="*", choices=KINDS, help="outputs not to write")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON record per image")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_segment)
