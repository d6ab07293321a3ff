"""LL-FPN + UPerNet segmenters, whole and slide, at 512x512 and 480x640: ours vs research-style.

Ours: fused attention, sliding windows batched. Research-style: explicit attention, one window per pass.

    python benchmarks/bench_segmenter.py [--archs unip_vit_small] [--rounds 5] [--quick] [--out FILE]
"""

from common import run_group

if __name__ == "__main__":
    raise SystemExit(run_group("segmenter", __doc__.splitlines()[0]))
