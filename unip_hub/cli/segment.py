"""``unip segment``: class masks, colour masks and overlays for thermal images and videos with a trained segmenter;
temperatures per class and region for radiometric inputs."""

from __future__ import annotations

import argparse
import json
import sys

from unip_hub.cli.common import (
    add_radiometric_arguments,
    add_runtime_arguments,
    add_video_arguments,
    calibration_of,
    runtime_options,
)
from unip_hub.constants import OUTPUT_KINDS as KINDS
from unip_hub.constants import SEGMENTER_HEADS, SEGMENTER_NECKS, SLIDE_CROP, SLIDE_STRIDE
from unip_hub.geo.cli import add_geo_arguments, geo_settings
from unip_hub.scale.ray import add_engine_arguments


def _settings(args: argparse.Namespace) -> tuple:
    """(image settings, Predictor keywords, video settings) from the parsed options."""
    from unip_hub.inference.outputs import SegmentSettings
    from unip_hub.inference.video import VideoSettings

    kinds = [k for k in KINDS if k not in (args.skip or [])]
    settings = SegmentSettings(kinds, args.alpha, not args.quiet, args.min_area, args.hot_above, not args.no_thermal)
    calibration = calibration_of(args)
    video = VideoSettings(args.batch_frames, args.smoothing, args.frame_masks, args.fps, args.min_area,
                          args.hot_above, progress=not args.quiet, max_frames=args.max_frames)
    return settings, {"scaling": args.scaling, "calibration": calibration}, video


def _report(args: argparse.Namespace, model: object, records: list[dict]) -> int:
    failed = [r for r in records if "error" in r]
    for r in failed:
        print(f"unip segment: error: {r['error']} (nothing written for it)", file=sys.stderr)
    interrupted = [r for r in records if r.get("interrupted")]
    for r in interrupted:
        print(f"unip segment: interrupted: {r['input']}: video finalised after {r['frames']} frame(s)", file=sys.stderr)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(f"segmented {len(records) - len(failed)} of {len(records)} input(s) with {model.config.get('arch')} "
              f"({model.num_classes} classes, {args.mode}) -> {args.out}")
    return 130 if interrupted else 1 if failed else 0


def _cmd_segment(args: argparse.Namespace) -> int:
    from unip_hub.inference.outputs import segment_paths

    settings, predictor_options, video = _settings(args)
    options = {"mode": args.mode, "crop_size": args.crop_size, "stride": args.stride,
               "batch_windows": args.batch_windows, "scale": tuple(args.scale) if args.scale else None}
    if args.engine == "ray":
        from unip_hub.scale.ray import segment_command

        model, records = segment_command(args, settings, predictor_options, options)
        return _report(args, model, records)
    load = {"arch": args.arch, "num_classes": args.num_classes, "head": args.head, "neck": args.neck}
    model, records = segment_paths(
        args.model, args.inputs, args.out, load, args.device, settings, predictor_options, video,
        runtime_options(args), folders_as_video=args.video, geo=geo_settings(args), **options)
    return _report(args, model, records)


def _add_thermal_options(p: argparse.ArgumentParser) -> None:
    g = add_radiometric_arguments(p, "flag regions hotter than this")
    g.add_argument("--min-area", type=int, default=1, help="smallest region in the statistics, pixels (default 1)")
    g.add_argument("--no-thermal", action="store_true", help="no thermal/ overlays and stats/ tables")
    v = add_video_arguments(p)
    v.add_argument("--frame-masks", action="store_true", help="also write every frame's class-index PNG")


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``unip segment``."""
    p = sub.add_parser(
        "segment", help="segment thermal images and videos with a trained segmenter checkpoint",
        description="Writes, per input image, the raw class-index PNG (masks/), the palette rendering (color/) and "
                    "an overlay on the input (overlay/), all at the input's size; for radiometric inputs (FLIR "
                    "R-JPEG, float TIFF/NPY, calibrated counts) also thermal/ (temperatures, colour bar, legend) "
                    "and stats/ (JSON and CSV per class and region). Videos give OUT/<name>/overlay.mp4 and "
                    "frames.csv. An unreadable input is reported (exit status 1) and gets no file. Folders are "
                    "searched recursively.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, video files")
    p.add_argument("--model", required=True, help="segmenter checkpoint: ours (.pth/.safetensors) or an mmseg "
                   "checkpoint of the research code")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--arch", default=None, help="backbone (unip_vit_tiny/small/base/large) when the file does not "
                   "say it")
    p.add_argument("--num-classes", type=int, default=None, help="number of classes when the file does not say it")
    p.add_argument("--head", choices=SEGMENTER_HEADS, default=None, help="default: read from the file")
    p.add_argument("--neck", choices=SEGMENTER_NECKS, default=None,
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
    add_runtime_arguments(p)  # --device, --runtime, --precision, --cache-dir, --calibration-frames, --min-agreement
    p.add_argument("--json", action="store_true", help="print one JSON record per input")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_thermal_options(p)
    add_geo_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(func=_cmd_segment)
