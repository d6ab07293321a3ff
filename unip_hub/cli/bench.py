"""``unip benchmark`` (speed/memory against same-run baselines) and ``unip export`` (ONNX / TorchScript /
torch.export with dynamic sizes, verified against eager)."""

from __future__ import annotations

import argparse

from unip_hub.benchmark.config import ARCHS, DEFAULT_GROUPS, DTYPE_NAMES, GROUPS, MODES, SEGMENTER_SIZES  # no torch
from unip_hub.cli.common import add_runtime_arguments


def _last_heads(value: str) -> int | str:
    if value == "distilled":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--last-heads takes 'distilled' or an int, not {value!r}") from None


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from unip_hub.benchmark import BenchConfig, run_benchmark

    cfg = BenchConfig(groups=tuple(args.groups), archs=tuple(args.archs), device=args.device, dtype=args.dtype,
                      compile=args.compile, rounds=args.rounds, warmup=args.warmup, batch_224=args.batch_224,
                      batch_512=args.batch_512, quick=args.quick, baselines=args.baselines, memory=not args.no_memory,
                      max_autotune=args.max_autotune, runtimes=tuple(args.runtime), precisions=tuple(args.precision),
                      cache_dir=args.cache_dir, segmenter_sizes=tuple(tuple(hw) for hw in args.seg_size or ())
                      or SEGMENTER_SIZES, modes=tuple(args.modes), accuracy_model=args.accuracy_model,
                      accuracy_data=args.accuracy_data, video_arch=args.video_arch,
                      video_frames=args.video_frames, video_size=tuple(args.video_size), video_batch=args.video_batch,
                      video_repeats=args.video_repeats, cuda_graphs=args.cuda_graphs, ort_profile=args.ort_profile)
    run_benchmark(cfg, out=args.out, markdown=args.markdown)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from unip_hub.export import export_model, load_model

    result = export_model(load_model(args.model, args.weights, args.num_classes, args.arch, args.last_heads),
                          args.output, format=args.format, size=args.size, check_sizes=args.check_size,
                          batch=args.batch, output=args.tokens, atol=args.atol, opset=args.opset)
    print(result.summary())
    return 0


def _register_benchmark(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark", help="speed, FLOPs, fraction of matmul peak and memory against same-run baselines",
        description="Measures our backbones (224, 512), segmenters (whole/slide at 512 and 480x640) and one NMI-HAD "
                    "step against timm's ViT and a research-style eager implementation on identical weights and "
                    "inputs, interleaved in the same run; prints a table and writes JSON. Ratios are medians of "
                    "per-round ratios; the fraction of peak divides by a matmul timed in the same round. With "
                    "--runtime onnxruntime / --precision int8 bf16, every runtime path is measured too (ort-fp32, "
                    "ort-int8, torch-bf16, and timm under ONNX Runtime), with a 'vs timm' column.")
    p.add_argument("--quick", action="store_true", help="tiny models, one round (checks that it runs)")
    p.add_argument("--groups", nargs="+", choices=GROUPS, default=list(DEFAULT_GROUPS),
                   help="what to measure (default all but video: end-to-end 'unip segment' frames/s on a 16-bit "
                        "sequence vs model-only, needs PyAV)")
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS), help="backbone sizes")
    p.add_argument("--dtype", choices=DTYPE_NAMES, default="fp32", help="autocast dtype (fp16: GPU)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile every inference variant with frozen weights (compile_for_inference)")
    p.add_argument("--max-autotune", action="store_true", help="with --compile: also autotune the matmul kernels")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="with --device cuda --compile: replay the compiled calls as CUDA graphs (fixed shapes)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per case (medians)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--batch-224", type=int, default=8, help="batch at 224 (backbones, distillation step)")
    p.add_argument("--batch-512", type=int, default=1, help="batch at 512 and of the segmenters")
    p.add_argument("--baselines", default=None,
                   help="Python file with the functions of unip_hub.benchmark.baselines to compare against instead")
    p.add_argument("--seg-size", type=int, nargs=2, action="append", metavar=("H", "W"),
                   help="segmenter input size (repeatable; default 512 512 and 480 640)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="segmenter modes")
    p.add_argument("--accuracy-model", default=None, metavar="CKPT",
                   help="a trained segmenter: also measure each runtime path's logit difference, mask agreement "
                        "and mIoU against fp32 torch")
    p.add_argument("--accuracy-data", default=None, metavar="DIR",
                   help="labelled test set for --accuracy-model (images/ + labels/, e.g. unip demo's data/); "
                        "default synthetic scenes")
    p.add_argument("--video-arch", choices=ARCHS, default="unip_vit_tiny", help="video group: segmenter backbone")
    p.add_argument("--video-frames", type=int, default=32, help="video group: frames of the synthetic sequence")
    p.add_argument("--video-size", type=int, nargs=2, default=(512, 640), metavar=("H", "W"),
                   help="video group: frame size (default 512 640)")
    p.add_argument("--video-batch", type=int, default=4, help="video group: frames per model call")
    p.add_argument("--video-repeats", type=int, default=4,
                   help="video group: end-to-end runs, alternating with model-only runs (default 4)")
    add_runtime_arguments(p, several=True)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--ort-profile", action="store_true",
                   help="with --runtime onnxruntime: kernel time per operator type of every ONNX Runtime graph")
    p.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    p.add_argument("--out", default="unip-benchmark.json", help="JSON output (default unip-benchmark.json)")
    p.set_defaults(func=_cmd_benchmark)


def _register_export(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "export", help="export a backbone or segmenter to ONNX / TorchScript / torch.export, verified",
        description="MODEL is an architecture (with --weights for a backbone, or --num-classes for an untrained "
                    "segmenter), a folder written by save_pretrained / unip convert (backbone), or a segmenter "
                    "checkpoint file. Batch, height and width stay dynamic (backbones: multiples of 16; segmenters: "
                    "any size from 64 px, padded inside the graph). The export is run at its size and two others and "
                    "compared with eager (onnxruntime for ONNX); it is written only if every size agrees to --atol.")
    e.add_argument("model", metavar="MODEL", help="architecture, save_pretrained folder, or segmenter checkpoint")
    e.add_argument("--format", choices=("onnx", "torchscript", "export"), default="onnx", help="default onnx")
    e.add_argument("-o", "--output", required=True, help="output file (.onnx / .pt / .pt2)")
    e.add_argument("--weights", default=None, help="backbone weights (registry tag or file) with an architecture")
    e.add_argument("--last-heads", type=_last_heads, default=None,
                   help="backbone last-block heads: 'distilled' or an int")
    e.add_argument("--num-classes", type=int, default=None, help="segmenter classes (untrained segmenter, or a "
                   "checkpoint that does not say)")
    e.add_argument("--arch", default=None, help="segmenter checkpoint's architecture when the file does not say")
    e.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="example size (224 224 / 512 512)")
    e.add_argument("--check-size", type=int, nargs=2, action="append", metavar=("H", "W"),
                   help="further size to verify at (repeatable; default two sizes other than --size)")
    e.add_argument("--batch", type=int, default=2, help="example batch (default 2)")
    e.add_argument("--tokens", choices=("tokens", "cls"), default="tokens",
                   help="backbone output: normalised tokens (B, 1+N, C) or the class token (B, C)")
    e.add_argument("--atol", type=float, default=1e-4, help="largest accepted |exported - eager| (default 1e-4)")
    e.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    e.set_defaults(func=_cmd_export)


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``unip benchmark`` and ``unip export``."""
    _register_benchmark(sub)
    _register_export(sub)
