"""NMI-HAD: the loss against an independent computation, training steps, resume, export, DDP, data, refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.reference_vit import reference_logits
from PIL import Image

from unip_hub.checkpoints import CheckpointError, read_checkpoint
from unip_hub.models.vit import UnipViT
from unip_hub.train.distill import NMIHAD, DistillConfig, build_student
from unip_hub.train.distill_loss import attention_kl_loss, attention_soft_ce_loss


def _perturbed(model: UnipViT, seed: int) -> UnipViT:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _pair(loss: str = "kl") -> NMIHAD:
    torch.manual_seed(0)
    student = _perturbed(UnipViT(img_size=32, embed_dim=64, depth=2, num_heads=2, last_heads=4), 1)
    teacher = _perturbed(UnipViT(img_size=32, embed_dim=128, depth=3, num_heads=4), 2)
    return NMIHAD(student, teacher, teacher_layer=2, loss=loss)


def _explicit_kl(s_logits: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
    p_t = torch.softmax(t_logits.double(), -1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s_logits.double(), -1))).sum(-1)  # (B, H, N)
    return kl.mean()


def test_loss_equals_independent_computation():
    model = _pair()
    x = torch.randn(3, 3, 32, 48)
    s_sd = {k: v.detach() for k, v in model.student.state_dict().items()}
    t_sd = {k: v.detach() for k, v in model.teacher.state_dict().items()}
    s_ref = reference_logits(s_sd, x, [2, 4], layer=1)  # student: last block, 4 heads
    t_ref = reference_logits(t_sd, x, [4, 4, 4], layer=1)  # teacher: layer 2 (1-based)
    assert s_ref.shape == t_ref.shape == (3, 4, 1 + 6, 1 + 6)
    expected = _explicit_kl(s_ref, t_ref)
    with torch.no_grad():
        assert float(model(x)) == pytest.approx(float(expected), abs=1e-5)
    with torch.no_grad():
        ce = _pair("soft_ce")(x)
    entropy = -(torch.softmax(t_ref.double(), -1) * torch.log_softmax(t_ref.double(), -1)).sum(-1).mean()
    assert float(ce) == pytest.approx(float(expected + entropy), abs=1e-5)
    assert float(attention_kl_loss(t_ref, t_ref)) == pytest.approx(0.0, abs=1e-6)
    assert float(attention_soft_ce_loss(t_ref, t_ref)) == pytest.approx(float(entropy), abs=1e-5)


def test_teacher_runs_to_layer_only_and_gets_no_gradient():
    model = _pair()
    ran = []
    for i, blk in enumerate(model.teacher.blocks):
        blk.register_forward_hook(lambda *_a, i=i: ran.append(i))
    x = torch.randn(2, 3, 32, 32)
    model.train()
    assert not model.teacher.training and model.student.training
    model(x).backward()
    assert ran == [0]  # block 1 runs in full; block 2 only its q/k path; block 3 never
    assert all(p.grad is None for p in model.teacher.parameters())
    last = model.student.blocks[-1]
    assert last.attn.qkv.weight.grad is not None and last.attn.qkv.weight.grad[128:].abs().sum() == 0  # value slice
    assert all(p.grad is None for p in [*last.attn.proj.parameters(), *last.mlp.parameters(),
                                        *last.norm2.parameters(), *model.student.norm.parameters()])


def test_mismatched_heads_or_patch_refused():
    student = UnipViT(img_size=32, embed_dim=64, depth=2, num_heads=2)
    teacher = UnipViT(img_size=32, embed_dim=128, depth=2, num_heads=4)
    with pytest.raises(ValueError, match="last_heads=4"):
        NMIHAD(student, teacher)
    with pytest.raises(ValueError, match="out of range"):
        NMIHAD(student, teacher, teacher_layer=3)
    with pytest.raises(ValueError, match="same shape"):
        attention_kl_loss(torch.zeros(1, 2, 5, 5), torch.zeros(1, 2, 6, 6))


def _ctx(model: NMIHAD, opt: torch.optim.Optimizer, accum: int = 1, dtype: torch.dtype | None = None):
    from unip_hub.train.core import LossScaler, StepContext

    cpu = torch.device("cpu")
    return StepContext(model, opt, LossScaler(cpu, dtype), cpu, dtype, accum)


def test_steps_lower_the_loss_and_accumulation_matches_a_full_batch():
    from unip_hub.train.distill_engine import distill_epoch
    from unip_hub.train.optim import param_groups_weight_decay

    x = torch.randn(4, 3, 32, 32)
    model = _pair()
    opt = torch.optim.AdamW(param_groups_weight_decay(model.student, 0.05), lr=1e-3, betas=(0.9, 0.95))
    losses = distill_epoch(_ctx(model, opt), [x] * 6, 0, 6, DistillConfig(epochs=1, warmup_epochs=0), 1e-3)
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    # accumulation: two half batches = one full batch (SGD: Adam would amplify rounding noise in zero gradients)
    states = []
    for accum, loader in ((1, [x] * 2), (2, [x[:2], x[2:]] * 2)):
        model = _pair()
        opt = torch.optim.SGD(model.student.parameters(), lr=0.5)
        cfg = DistillConfig(epochs=1, warmup_epochs=0, accum_iter=accum)
        distill_epoch(_ctx(model, opt, accum), loader, 0, len(loader), cfg, 0.5)
        states.append(model.student.state_dict())
    assert all(torch.allclose(states[0][k], states[1][k], atol=1e-5) for k in states[0])


def test_pretrain_transform_and_infmix_layout(tmp_path):
    from unip_hub.train.distill_data import build_pretrain_dataset, pretrain_transform

    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    t = pretrain_transform(32)(rgb)
    assert t.shape == (3, 32, 32) and torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])
    flat = pretrain_transform(32)(Image.new("RGB", (50, 50), (100, 100, 100)))
    assert torch.allclose(flat, torch.full_like(flat, (100 / 255 - 0.3801) / 0.1871), atol=1e-5)
    for ds, n in (("ds_a", 2), ("ds_b", 3)):
        (tmp_path / "infmix" / ds / "thermal").mkdir(parents=True)
        for i in range(n):
            Image.new("L", (20, 20), i * 40).save(tmp_path / "infmix" / ds / "thermal" / f"{i}.png")
    for cls in ("n01", "n02"):
        (tmp_path / "imagenet" / cls).mkdir(parents=True)
        for i in range(3):
            rgb.save(tmp_path / "imagenet" / cls / f"{i}.JPEG")
    (tmp_path / "coco" / "train2017").mkdir(parents=True)
    rgb.save(tmp_path / "coco" / "train2017" / "c.jpg")
    data = build_pretrain_dataset(tmp_path / "infmix", "infmix", pretrain_transform(32), tmp_path / "imagenet", 2,
                                  tmp_path / "coco")
    assert len(data) == 5 + 4 + 1 and data[7].shape == (3, 32, 32)
    assert len(build_pretrain_dataset(tmp_path / "imagenet", "folder")) == 6
    with pytest.raises(ValueError, match="layout"):
        build_pretrain_dataset(tmp_path, "coco")


# ------------------------------------------------------------------------------------------- full runs
def _images(folder: Path, n: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _teacher_file(path: Path, width: int = 128, depth: int = 2) -> Path:
    torch.manual_seed(3)
    t = _perturbed(UnipViT(img_size=32, embed_dim=width, depth=depth, num_heads=width // 64), 4)
    torch.save({"model": t.state_dict() | {"decoder_embed.weight": torch.zeros(8, width)}}, path)  # MAE layout
    return path


def _tiny_cfg(tmp_path: Path, out: str, **kw) -> DistillConfig:
    base = dict(teacher=str(_teacher_file(tmp_path / "teacher.pth")), teacher_arch="auto", teacher_layer=2,
                model="unip_vit_tiny", embed_dim=64, depth=2, num_heads=2, data_path=str(_images(tmp_path / "img")),
                input_size=32, batch_size=2, epochs=2, warmup_epochs=1, blr=1e-2, save_every=1,
                output_dir=str(tmp_path / out), num_workers=0, device="cpu", max_steps_per_epoch=2)
    return DistillConfig(**(base | kw))


@pytest.mark.slow
def test_resume_reproduces_the_next_loss(tmp_path):
    from unip_hub.train.distill_engine import run_distillation

    full = run_distillation(_tiny_cfg(tmp_path, "a"))
    assert sorted(full.losses) == [0, 1] and all(len(v) == 2 for v in full.losses.values())
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "checkpoint-000.pth", tmp_path / "b" / "checkpoint-000.pth")
    resumed = run_distillation(_tiny_cfg(tmp_path, "b", resume="auto"))
    assert sorted(resumed.losses) == [1]
    assert resumed.losses[1] == pytest.approx(full.losses[1], abs=1e-6)
    log = [json.loads(ln) for ln in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1]
    ck = read_checkpoint(tmp_path / "a" / "checkpoint-001.pth")
    assert set(ck) == {"model", "optimizer", "epoch", "scaler", "args"} and ck["epoch"] == 1
    a, b = ck["model"], read_checkpoint(tmp_path / "b" / "checkpoint-001.pth")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(ValueError, match="different run"):
        run_distillation(_tiny_cfg(tmp_path, "b", resume=str(tmp_path / "a" / "checkpoint-000.pth"), depth=3))


@pytest.mark.slow
def test_cli_distill_exports_loadable_students(tmp_path, capsys):
    import unip_hub
    from unip_hub.cli import main

    teacher = _teacher_file(tmp_path / "wide.pth", width=1024, depth=1)  # 16 heads, like MAE-L / iBOT-L
    rc = main(["distill", "--teacher", str(teacher), "--teacher-arch", "auto", "--teacher-layer", "1",
               "--model", "unip_vit_tiny", "--data-path", str(_images(tmp_path / "img", 4)), "--input-size", "32",
               "--batch-size", "2", "--epochs", "1", "--max-steps-per-epoch", "1", "--num-workers", "0",
               "--device", "cpu", "--output-dir", str(tmp_path / "out")])
    assert rc == 0 and "student folder" in capsys.readouterr().out
    ck = read_checkpoint(tmp_path / "out" / "checkpoint-000.pth")
    assert ck["args"].teacher_layer == 1 and ck["model"]["blocks.11.attn.qkv.weight"].shape == (576, 192)
    from_pth = unip_hub.unip_vit_tiny(weights=tmp_path / "out" / "checkpoint-000.pth", last_heads=16, img_size=32)
    from_dir = unip_hub.unip_vit_tiny(weights=tmp_path / "out" / "student", last_heads="distilled", img_size=32)
    assert from_dir.blocks[-1].attn.num_heads == 16 == from_pth.blocks[-1].attn.num_heads
    for k, v in ck["model"].items():
        assert torch.equal(from_pth.state_dict()[k], v) and torch.equal(from_dir.state_dict()[k], v), k
    # a teacher file in the wrong layout is refused, naming what is missing
    torch.save({"model": {"encoder.weight": torch.zeros(2)}}, tmp_path / "bad.pth")
    rc = main(["distill", "--teacher", str(tmp_path / "bad.pth"), "--teacher-arch", "auto", "--data-path",
               str(tmp_path / "img"), "--output-dir", str(tmp_path / "bad"), "--device", "cpu"])
    assert rc == 2 and "cls_token" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_two_process_ddp_on_gloo(tmp_path):
    cfg = _tiny_cfg(tmp_path, "ddp", epochs=1)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in vars(cfg.to_namespace()).items()
            if v is not None and not isinstance(v, bool)]
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "unip_hub.train.distill",
                           *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(ln) for ln in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert log[0]["steps"] == 2 and log[0]["images"] == 2 * 2 * 2  # 2 steps x batch 2 x 2 processes
    ck = read_checkpoint(tmp_path / "ddp" / "checkpoint-000.pth")
    assert all(torch.isfinite(v).all() for v in ck["model"].values())


def test_wrong_teacher_refused_before_training(tmp_path):
    from unip_hub.train.distill_engine import run_distillation

    sd = UnipViT(img_size=32, embed_dim=128, depth=2, num_heads=2).state_dict()
    sd.pop("blocks.1.attn.qkv.weight")
    torch.save(sd, tmp_path / "t.pth")
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attn\.qkv\.weight"):
        run_distillation(_tiny_cfg(tmp_path, "x", teacher=str(tmp_path / "t.pth")))
    assert not (tmp_path / "x").exists()


def test_build_student_records_heads():
    s = build_student("unip_vit_tiny", last_heads=16, img_size=32, depth=2)
    assert s.blocks[-1].attn.num_heads == 16 and s.distilled_last_heads == 16 and s.pos_grid == (2, 2)
    assert not s.pos_embed.requires_grad


def test_bf16_autocast_step_on_cpu():
    from unip_hub.train.distill_engine import distill_epoch

    model = _pair()
    opt = torch.optim.AdamW(model.student.parameters(), lr=1e-3)
    x = torch.randn(2, 3, 32, 32)
    losses = distill_epoch(_ctx(model, opt, dtype=torch.bfloat16), [x, x], 0, 2,
                           DistillConfig(epochs=1, warmup_epochs=0), 1e-3)
    assert all(np.isfinite(losses)) and model.student.blocks[0].attn.qkv.weight.dtype == torch.float32
