"""NMI-HAD in miniature on a CPU: distil a teacher layer's attention into a tiny ViT and watch it move.

Runs in well under a minute on one CPU core (on a busy machine set ``OMP_NUM_THREADS=1``):

    python examples/distill_tiny_cpu.py --out runs/distill_tiny
    python examples/distill_tiny_cpu.py --images /data/thermal --teacher timm:vit_small_patch16_224 --teacher-layer 9

Without ``--images`` it writes synthetic thermal street scenes; without ``--teacher`` it builds a small stand-in
teacher offline (2 blocks, 4 heads; its layer-2 queries and keys are scaled identities, so each token attends to
tokens similar to itself -- a content-dependent, fairly local pattern with NMI about 0.35). A real teacher
(``timm:NAME`` with download, or an MAE / iBOT / DINO / DeiT file) replaces it.

It uses the package's pieces as a training script would: :func:`pretrain_transform` + ``ImageFolderDataset``,
:class:`NMIHAD`, AdamW without decay on biases/norms/tokens, warm-up + cosine per step. Every ``--eval-every``
steps it measures the NMI of the student's last block and of the teacher layer on a fixed batch. Outputs in
``--out``: ``curves.json`` and ``curves.png`` (loss; student NMI against the teacher's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unip_hub.analysis import attention_nmi
from unip_hub.data.datasets import ImageFolderDataset
from unip_hub.data.synthetic import make_scene
from unip_hub.models.vit import UnipViT
from unip_hub.train.distill import NMIHAD, build_student, load_teacher
from unip_hub.train.distill_data import pretrain_transform
from unip_hub.train.lr import cosine_lr, set_lr
from unip_hub.train.optim import param_groups_weight_decay
from unip_hub.utils.atomic import atomic_path, write_text_atomic


def synthetic_images(folder: Path, n: int = 96, seed: int = 0) -> Path:
    """Writes ``n`` synthetic 8-bit thermal scenes (128 x 160) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        gray, _ = make_scene(128, 160, rng)
        Image.fromarray(gray).save(folder / f"{i:04d}.png")
    return folder


def stand_in_teacher(img_size: int, alpha: float = 1.0) -> UnipViT:
    """A 2-block, 128-wide, 4-head ViT whose layer-2 query/key maps are ``alpha`` * identity (see module doc)."""
    torch.manual_seed(0)
    teacher = UnipViT(img_size=img_size, embed_dim=128, depth=2, num_heads=4)
    c = teacher.embed_dim
    with torch.no_grad():
        qkv = teacher.blocks[1].attn.qkv
        qkv.weight[: 2 * c] = torch.cat([torch.eye(c), torch.eye(c)]) * alpha  # W_q = W_k = alpha * I
        qkv.bias[: 2 * c] = 0
    return teacher.requires_grad_(False).eval()


def nmi_of(logits: torch.Tensor) -> float:
    return float(attention_nmi(logits.float().softmax(dim=-1)).mean())


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the curves (also written to ``--out``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=None, help="folder of images (default: synthetic scenes in OUT/images)")
    p.add_argument("--teacher", default=None, help="teacher file or timm:NAME (default: offline stand-in)")
    p.add_argument("--teacher-layer", type=int, default=2)
    p.add_argument("--out", default="runs/distill_tiny")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a few steps on tiny inputs (what the tests run)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch_size, args.input_size, args.eval_every = 6, 4, 32, 3
    out = Path(args.out)
    images = Path(args.images) if args.images else synthetic_images(out / "images", n=8 if args.quick else 96)

    if args.teacher:
        teacher = load_teacher(args.teacher, arch=None, layer=args.teacher_layer)
    else:
        teacher = stand_in_teacher(args.input_size)
    heads = teacher.blocks[args.teacher_layer - 1].attn.num_heads
    torch.manual_seed(args.seed)
    student = build_student("unip_vit_tiny", last_heads=heads, drop_path_rate=0.0, img_size=args.input_size,
                            embed_dim=96, depth=4, num_heads=3)
    model = NMIHAD(student, teacher, args.teacher_layer)
    data = ImageFolderDataset(images, transform=pretrain_transform(args.input_size))
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True)
    probe = torch.stack([data[i] for i in range(min(16, len(data)))])  # fixed batch for the NMI curves
    opt = torch.optim.AdamW(param_groups_weight_decay(student, 0.05), lr=args.lr, betas=(0.9, 0.95))
    teacher_nmi = nmi_of(model.teacher_logits(probe))

    curves: dict[str, list] = {"step": [], "loss": [], "eval_step": [], "student_nmi": [], "teacher_nmi": teacher_nmi}
    step = 0
    while step < args.steps:
        for x in loader:
            if step % args.eval_every == 0:
                model.eval()
                with torch.no_grad():
                    curves["eval_step"].append(step)
                    curves["student_nmi"].append(nmi_of(model.student_logits(probe)))
                model.train()
            set_lr(opt, cosine_lr(step, args.steps, args.lr, warmup=args.steps // 20))
            loss = model(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            curves["step"].append(step)
            curves["loss"].append(loss.item())
            step += 1
            if step >= args.steps:
                break
    model.eval()
    with torch.no_grad():
        curves["eval_step"].append(step)
        curves["student_nmi"].append(nmi_of(model.student_logits(probe)))
    write_text_atomic(json.dumps(curves), out / "curves.json")
    plot(curves, out / "curves.png")
    first, last = np.mean(curves["loss"][:10]), np.mean(curves["loss"][-10:])
    print(f"loss {first:.4f} -> {last:.4f}; student last-block NMI {curves['student_nmi'][0]:.3f} -> "
          f"{curves['student_nmi'][-1]:.3f} (teacher layer {args.teacher_layer}: {teacher_nmi:.3f})")
    print(f"wrote {out}/curves.json and {out}/curves.png")
    return curves


def plot(curves: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(fig)
    a, b = fig.subplots(1, 2)
    a.plot(curves["step"], curves["loss"], lw=0.8)
    a.set_xlabel("step")
    a.set_ylabel("NMI-HAD loss (KL)")
    a.set_yscale("log")
    b.plot(curves["eval_step"], curves["student_nmi"], "o-", label="student last block")
    b.axhline(curves["teacher_nmi"], ls="--", color="#a33", label="teacher layer")
    b.set_xlabel("step")
    b.set_ylabel("NMI")
    b.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


if __name__ == "__main__":
    main()
