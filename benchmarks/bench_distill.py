"""One NMI-HAD training step: ours vs the research-style step, same weights, inputs and loss.

Student ViT-S with last_heads 12, teacher ViT-B layer 9, 224 px, AdamW. The research-style step computes every
attention explicitly, runs teacher layer L in full and its logits twice, and runs the student's last block in full.

    python benchmarks/bench_distill.py [--rounds 5] [--batch-224 8] [--quick] [--out FILE]
"""

from common import run_group

if __name__ == "__main__":
    raise SystemExit(run_group("distill", __doc__.splitlines()[0]))
