"""``unip detect``: boxes, labels and scores on thermal images and videos with a trained detector; per-box
temperatures for radiometric inputs."""

from __future__ import annotations

import argparse
import json
import sys

from unip_hub.cli.common import add_radiometric_arguments, add_video_arguments, calibration_of
from unip_hub.geo.cli import add_geo_arguments, geo_settings


def _cmd_detect(args: argparse.Namespace) -> int:
    from unip_hub.detection.outputs import DetectSettings
    from unip_hub.detection.paths import detect_paths
    from unip_hub.inference.video import VideoSettings

    calibration = calibration_of(args)
    options = {"scaling": args.scaling, "calibration": calibration, "score_thresh": args.score_thresh,
               "nms_thresh": args.nms_thresh, "max_detections": args.max_detections}
    settings = DetectSettings(args.hot_above, not args.no_overlay, args.line_width, not args.quiet)
    video = VideoSettings(args.batch_frames, args.smoothing, fps=args.fps, hot_above=args.hot_above,
                          progress=not args.quiet, max_frames=args.max_frames)
    model, records = detect_paths(args.model, args.inputs, args.out, device=args.device, settings=settings,
                                  predictor_options=options, video=video, runtime=args.runtime,
                                  cache_dir=args.cache_dir, folders_as_video=args.video,
                                  geo=geo_settings(args))
    failed = [r for r in records if "error" in r]
    for r in failed:
        print(f"unip detect: error: {r['error']} (nothing written for it)", file=sys.stderr)
    interrupted = [r for r in records if r.get("interrupted")]
    for r in interrupted:
        print(f"unip detect: interrupted: {r['input']}: video finalised after {r['frames']} frame(s)", file=sys.stderr)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        boxes = sum(r.get("detections", 0) for r in records)
        print(f"detected {boxes} object(s) in {len(records) - len(failed)} of {len(records)} input(s) with "
              f"{model.config.get('arch')} {model.config.get('head')} ({model.num_classes} classes) -> {args.out}")
    return 130 if interrupted else 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``unip detect``."""
    p = sub.add_parser(
        "detect", help="detect objects in thermal images and videos with a trained detector",
        description="Writes, per input image, overlay/<name>.png (boxes, labels, scores) and csv/<name>.csv (one row "
                    "per detection: box, class, score and, for radiometric inputs -- FLIR R-JPEG, float TIFF/NPY, "
                    "calibrated counts -- min/mean/max/p95 degC inside the box, or the mask for Mask R-CNN, and a "
                    "hot flag), plus detections.json (COCO results of the run). Videos (and folders with --video) "
                    "give OUT/<name>/overlay.mp4 and frames.csv. Georeferenced GeoTIFFs (orthomosaics; pip install "
                    "'unip[geo]') are detected tile by tile, never read whole: OUT/<name>_detections.gpkg / .geojson "
                    "/ .csv (boxes in map coordinates, areas, temperatures, one per object across tile overlaps) "
                    "and <name>_detections.png. An unreadable input is reported (exit status 1) "
                    "and gets no file. Folders are searched recursively.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, video files")
    p.add_argument("--model", required=True, help="detector: best.pth of unip finetune --task detection, or a file "
                   "of save_detector (.pth, .safetensors, Hugging Face folder)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--score-thresh", type=float, default=None,
                   help="drop detections scoring below this (default: the detector's, 0.05 for Faster R-CNN)")
    p.add_argument("--nms-thresh", type=float, default=None, help="IoU of the per-class non-maximum suppression "
                   "(default: the detector's, 0.5)")
    p.add_argument("--max-detections", type=int, default=None, help="at most this many detections per image "
                   "(default: the detector's, 100)")
    p.add_argument("--line-width", type=int, default=0, help="box outline width in pixels (default: by image size)")
    p.add_argument("--no-overlay", action="store_true", help="no overlay/ PNGs (CSV and JSON only)")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default cpu)")
    g.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                   help="torch (eager) or onnxruntime (the detector exported once to ONNX, thresholds fixed in the "
                        "graph); default torch")
    g.add_argument("--cache-dir", default=None, help="folder of the exported ONNX files (default: next to the "
                   "checkpoint)")
    add_radiometric_arguments(p, "flag detections whose hottest pixel exceeds this")
    add_video_arguments(p)
    add_geo_arguments(p, polygons=False)
    p.add_argument("--json", action="store_true", help="print one JSON record per input")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_detect)
