"""Shared training utilities: lr schedules, parameter groups, atomic checkpoints, rng states, dist helpers."""

from __future__ import annotations

import itertools
import math
import os
import random
import socket

import numpy as np
import pytest
import torch
from torch import nn

from unip_hub.checkpoints import CheckpointError
from unip_hub.models.vit import UnipViT
from unip_hub.train import dist as udist
from unip_hub.train.checkpointing import capture_rng_state, load_training_state, restore_rng_state
from unip_hub.train.lr import cosine_lr, poly_lr, set_lr
from unip_hub.train.optim import layer_id, param_groups_lrd, param_groups_weight_decay
from unip_hub.utils.atomic import save_torch_atomic


def _tiny_vit(**kw) -> UnipViT:
    return UnipViT(img_size=32, embed_dim=64, depth=3, num_heads=2, init_values=1.0, **kw)


# ------------------------------------------------------------------------------------------------------ lr
def test_poly_lr_matches_mmcv_formula():
    base, total, warm = 1e-4, 100, 10
    assert poly_lr(0, total, base, warm) == pytest.approx(base * 1e-6)
    # mmcv: regular = base * (1 - it/total); warm-up factor 1 - (1 - it/warm) * (1 - ratio)
    it = 4
    expected = base * (1 - it / total) * (1 - (1 - it / warm) * (1 - 1e-6))
    assert poly_lr(it, total, base, warm) == pytest.approx(expected)
    assert poly_lr(warm, total, base, warm) == pytest.approx(base * 0.9)
    assert poly_lr(50, total, base, warm) == pytest.approx(base * 0.5)
    assert poly_lr(total, total, base, warm) == 0.0
    assert poly_lr(50, total, base, 0, power=2.0) == pytest.approx(base * 0.25)
    with pytest.raises(ValueError):
        poly_lr(0, 0, base, 0)


def test_cosine_lr_warmup_and_end():
    assert cosine_lr(0, 100, 1.0, 10) == 0.0
    assert cosine_lr(5, 100, 1.0, 10) == pytest.approx(0.5)
    assert cosine_lr(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 1.0, 10) == pytest.approx(0.5)
    assert cosine_lr(100, 100, 1.0, 10, min_lr=0.1) == pytest.approx(0.1)
    values = [cosine_lr(i, 100, 1.0, 10) for i in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


# -------------------------------------------------------------------------------------------- param groups
class _Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = _tiny_vit(pos_embed_trainable=True)
        self.decode_head = nn.Sequential(nn.Conv2d(64, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 3, 1))


def test_layer_ids_follow_beit():
    assert layer_id("cls_token", 12) == 0
    assert layer_id("pos_embed", 12) == 0
    assert layer_id("patch_embed.proj.weight", 12) == 0
    assert layer_id("blocks.0.attn.qkv.weight", 12) == 1
    assert layer_id("blocks.11.mlp.fc1.weight", 12) == 12
    assert layer_id("norm.weight", 12) == 13
    assert layer_id("backbone.blocks.3.norm1.weight", 12, "backbone.") == 4
    assert layer_id("neck.fpn1.0.weight", 12, "backbone.") == 13


def test_param_groups_lrd_scales_and_decay():
    model = _Wrapped()
    groups = param_groups_lrd(model, weight_decay=0.05, layer_decay=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert len(by_param) == len(named)  # every trainable parameter exactly once
    depth = 3
    assert by_param[id(named["backbone.pos_embed"])]["lr_scale"] == pytest.approx(0.5 ** (depth + 1))
    assert by_param[id(named["backbone.pos_embed"])]["weight_decay"] == 0.0
    assert by_param[id(named["backbone.cls_token"])]["weight_decay"] == 0.0
    assert by_param[id(named["backbone.patch_embed.proj.weight"])]["weight_decay"] == 0.05
    assert by_param[id(named["backbone.blocks.0.attn.qkv.weight"])]["lr_scale"] == pytest.approx(0.5 ** 3)
    assert by_param[id(named["backbone.blocks.2.attn.qkv.weight"])]["lr_scale"] == pytest.approx(0.5)
    assert by_param[id(named["backbone.blocks.2.attn.qkv.bias"])]["weight_decay"] == 0.0
    assert by_param[id(named["backbone.blocks.1.ls1.gamma"])]["weight_decay"] == 0.0
    assert by_param[id(named["backbone.norm.weight"])]["lr_scale"] == 1.0
    assert by_param[id(named["decode_head.0.weight"])]["lr_scale"] == 1.0
    assert by_param[id(named["decode_head.0.weight"])]["weight_decay"] == 0.05
    assert by_param[id(named["decode_head.1.weight"])]["weight_decay"] == 0.0
    opt = torch.optim.AdamW(groups, lr=1.0)
    set_lr(opt, 2e-4)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(named["backbone.blocks.2.mlp.fc1.weight"])] == pytest.approx(1e-4)


def test_param_groups_skip_frozen_and_plain_vit():
    model = _Wrapped()
    model.backbone.requires_grad_(False)
    groups = param_groups_lrd(model)
    n = sum(len(g["params"]) for g in groups)
    assert n == sum(1 for p in model.decode_head.parameters())
    vit = _tiny_vit()
    groups = param_groups_weight_decay(vit, 0.05)
    nd = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    everything = {id(p) for g in groups for p in g["params"]}
    assert id(vit.pos_embed) not in everything  # the fixed sin-cos table of a pre-training ViT is not trained
    assert id(vit.cls_token) in nd and id(vit.blocks[0].norm1.weight) in nd
    assert id(vit.blocks[0].attn.qkv.weight) not in nd
    with pytest.raises(ValueError, match="backbone"):
        param_groups_lrd(nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------------ checkpoints
def test_training_state_roundtrip_and_failed_write(tmp_path):
    model = _tiny_vit()
    opt = torch.optim.AdamW(param_groups_lrd(model), lr=1e-3)
    model(torch.randn(1, 3, 32, 32)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": 7,
             "config": {"arch": "tiny", "betas": (0.9, 0.999), "crop": [32, 32]}, "rng": capture_rng_state()}
    path = tmp_path / "last.pth"
    save_torch_atomic(state, path)
    back = load_training_state(path)
    assert back["iteration"] == 7 and back["config"]["arch"] == "tiny"
    assert torch.equal(back["model"]["blocks.0.attn.qkv.weight"], model.blocks[0].attn.qkv.weight)
    opt2 = torch.optim.AdamW(param_groups_lrd(_tiny_vit()), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    # a failing write keeps the old file intact and leaves no temporary file
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails inside torch.save
        save_torch_atomic({"bad": lambda: 0}, path)
    assert load_training_state(path)["iteration"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_truncated_training_state_is_refused(tmp_path):
    path = save_torch_atomic({"w": torch.ones(1000)}, tmp_path / "x.pth")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_training_state(path)


def test_safetensors_atomic(tmp_path):
    sd = {"a": torch.arange(4.0), "b": torch.ones(2, 2)}
    path = save_torch_atomic(sd, tmp_path / "m.safetensors")
    back = load_training_state(path)
    assert torch.equal(back["a"], sd["a"]) and torch.equal(back["b"], sd["b"])


def test_rng_state_roundtrip_through_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = save_torch_atomic({"rng": capture_rng_state()}, tmp_path / "rng.pth")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(load_training_state(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


# ------------------------------------------------------------------------------------------------------ dist
def test_single_process_dist_helpers(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = udist.init_distributed(device="cpu")
    assert not info.distributed and info.world_size == 1 and info.device == "cpu"
    assert udist.is_main_process() and udist.get_world_size() == 1
    assert udist.all_reduce_mean(torch.tensor(3.0)) == 3.0
    assert udist.broadcast_object({"a": 1}) == {"a": 1}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    info = udist.init_distributed(device="cpu")
    mean = udist.all_reduce_mean(float(rank + 1))  # (1 + 2) / 2
    obj = udist.broadcast_object({"rank": rank})
    torch.save({"mean": mean, "obj": obj, "main": udist.is_main_process(), "world": info.world_size},
               f"{out}/{rank}.pt")
    udist.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_all_reduce(tmp_path):
    torch.multiprocessing.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    assert [r["mean"] for r in results] == [1.5, 1.5]
    assert [r["obj"] for r in results] == [{"rank": 0}, {"rank": 0}]
    assert [r["main"] for r in results] == [True, False] and results[0]["world"] == 2
    assert not math.isnan(results[0]["mean"])


# ------------------------------------------------------------------------------------------ the training core
def test_seed_everything_plain_and_salted():
    from unip_hub.train.core import seed_everything

    assert seed_everything(7) == 7
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    assert seed_everything(3, -1, 1) == (3 * 1_000_003 - 1009 + 1) % 2**31
    assert seed_everything(3, 2, 0) != seed_everything(3, 2, 1)


def test_amp_dtype_choice():
    from unip_hub.train.core import amp_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert amp_dtype("auto", cpu) is None and amp_dtype(True, cpu) is None and amp_dtype(False, cuda) is None
    assert amp_dtype("auto", cuda) is torch.float16 and amp_dtype(True, cuda) is torch.float16
    assert amp_dtype("bf16", cpu) is torch.bfloat16 and amp_dtype("none", cuda) is None
    with pytest.raises(ValueError, match="needs CUDA"):
        amp_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="amp must be"):
        amp_dtype("fp8", cpu)


def test_loss_scaler_clips_steps_and_zeroes():
    from unip_hub.train.core import LossScaler

    cpu = torch.device("cpu")
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    opt = torch.optim.SGD(lin.parameters(), lr=1.0)
    scaler = LossScaler(cpu, None, clip_grad=0.5)
    loss = (lin(torch.full((1, 4), 10.0)) ** 2).sum()  # gradient 2 * 40 * 10 = 800 per weight, norm 1600
    scaler(loss, opt, lin.parameters(), update=False)
    assert lin.weight.grad is not None and torch.equal(lin.weight, torch.ones(1, 4))  # accumulated, not stepped
    scaler((lin(torch.zeros(1, 4)) ** 2).sum(), opt, lin.parameters())
    # clipped to norm 0.5: each of the 4 equal components is 0.25; SGD lr 1 moves every weight by 0.25
    torch.testing.assert_close(lin.weight, torch.full((1, 4), 0.75))
    assert lin.weight.grad is None and scaler.state_dict() == {}


def test_check_resume_names_each_difference(tmp_path):
    from unip_hub.train.core import check_resume

    check_resume({"lr": 1.0, "betas": (0.9, 0.99), "out": "a"}, {"lr": 1.0, "betas": [0.9, 0.99], "out": "b"},
                 tmp_path / "x.pth", ignore={"out"})
    with pytest.raises(ValueError, match=r"cannot resume .*different run .*lr: 1.0 in the checkpoint, 2.0 now"):
        check_resume({"lr": 2.0, "seed": 0}, {"lr": 1.0, "seed": 0}, tmp_path / "x.pth")
    # with keys: only those compared, and only where the checkpoint records them
    check_resume({"lr": 2.0, "depth": 3}, {"lr": 1.0}, "x", keys=("depth",))


# ----------------------------------------------------------------------------------------- config -> options
def test_dataclass_options_roundtrip():
    import argparse
    from dataclasses import dataclass, field

    from unip_hub.train.config import add_dataclass_arguments, dataclass_from_args

    @dataclass
    class Cfg:
        name: str = field(default="", metadata={"help": "a name", "required": True})
        size: tuple[int, int] | None = field(default=None, metadata={"help": "h w", "metavar": ("H", "W")})
        rate: float | None = field(default=None, metadata={"help": "rate (default: from the data)"})
        flag: bool = field(default=True, metadata={"help": "a switch"})
        probe: bool = field(default=False, metadata={"help": "store-true", "action": "store_true"})
        mode: str = field(default="a", metadata={"help": "mode", "choices": ("a", "b")})
        extra: dict = field(default_factory=dict, metadata={"cli": False})

    parser = add_dataclass_arguments(argparse.ArgumentParser(), Cfg)
    cfg = dataclass_from_args(Cfg, parser.parse_args(["--name", "x", "--size", "2", "3", "--no-flag", "--probe"]))
    assert cfg == Cfg(name="x", size=(2, 3), flag=False, probe=True)
    assert "(default: a)" in parser.format_help() and "(default: from the data)" in parser.format_help()
    assert "--extra" not in parser.format_help() and "--no-probe" not in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--name", "x", "--mode", "c"])
    sparse = add_dataclass_arguments(argparse.ArgumentParser(), Cfg, suppress_defaults=True)
    given = sparse.parse_args(["--name", "y", "--rate", "0.5"])
    assert vars(given) == {"name": "y", "rate": 0.5}
    assert dataclass_from_args(Cfg, given, base={"mode": "b", "size": [4, 5], "unknown": 1}) == Cfg(
        name="y", rate=0.5, mode="b", size=[4, 5])
