"""ViT backbones at 224 and 512: ours vs timm's VisionTransformer and a research-style eager ViT (--runtime onnxruntime
--precision fp32 int8: also ours and timm under ONNX Runtime, ours int8).

Same weights and inputs for every variant, interleaved in one run; the matmul peak is timed in every round.

    python benchmarks/bench_backbones.py [--archs unip_vit_small] [--rounds 5] [--quick] [--out FILE]
"""

from common import run_group

if __name__ == "__main__":
    raise SystemExit(run_group("backbone", __doc__.splitlines()[0]))
