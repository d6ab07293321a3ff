"""Fine-tuning: learning on synthetic scenes, exact resume, checkpoints loadable as segmenters, linear probe,
presets, the ``unip finetune`` CLI and 2-process DDP on gloo."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers.training import TINY_BACKBONE, free_port, majority_miou, tiny_config, write_radiometric_dataset

from unip_hub.checkpoints import read_checkpoint
from unip_hub.cli import main
from unip_hub.data.presets import DATASETS, PRESETS
from unip_hub.data.radiometric import read_radiometric
from unip_hub.data.readers import read_thermal
from unip_hub.data.scaling import InputScaling
from unip_hub.data.synthetic import SyntheticThermalDataset
from unip_hub.data.transforms import normalize
from unip_hub.hub.segmenters import create_segmenter, load_segmenter
from unip_hub.train.finetune import FinetuneConfig, build_dataset, build_segmenter, finetune
from unip_hub.train.logger import read_log


# ------------------------------------------------------------------------------------------------- config
def test_presets_follow_the_reference_table():
    soda = FinetuneConfig(dataset="soda", data_root="x").resolved()
    assert (soda.iterations, soda.warmup, soda.head) == (14_400, 1_500, "upernet")
    assert soda.scale == (2048, 512) and soda.eval_stride == 341 and soda.crop_size == 512
    assert (soda.lr, soda.betas, soda.weight_decay, soda.layer_decay) == (1e-4, (0.9, 0.999), 0.05, 0.85)
    assert (soda.aux_weight, soda.drop_path, soda.batch_size) == (0.4, 0.1, 8)
    mfnet = FinetuneConfig(dataset="mfnet", data_root="x").resolved()
    assert (mfnet.iterations, mfnet.warmup) == (9_800, 1_000)
    scut = FinetuneConfig(dataset="scut", data_root="x").resolved()
    assert (scut.iterations, scut.warmup) == (16_800, 1_700)
    short = FinetuneConfig(dataset="scut", data_root="x", iterations=100).resolved()
    assert (short.iterations, short.warmup, short.eval_interval) == (100, 10, 10)
    assert FinetuneConfig(linear_probe=True).resolved().head == "linear"
    assert PRESETS["soda"] == (21, 14_400, 1_500) and PRESETS["mfnet"].num_classes == 9
    assert PRESETS["scut"].iterations == 16_800 and set(DATASETS) == set(PRESETS)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="dataset must be one of"):
        FinetuneConfig(dataset="cityscapes").resolved()
    with pytest.raises(ValueError, match="--data-root is required"):
        FinetuneConfig(dataset="soda").resolved()
    with pytest.raises(ValueError, match="multiple of 16"):
        FinetuneConfig(crop_size=100).resolved()


def test_input_scaling_setting_is_canonical_and_checked():
    assert FinetuneConfig().resolved().input_scaling == "percentile 0.5/99.5"
    assert FinetuneConfig(input_scaling="WINDOW 20..40").resolved().input_scaling == "window 20..40 degC"
    with pytest.raises(ValueError, match="unknown input scaling"):
        FinetuneConfig(input_scaling="gamma 2").resolved()
    with pytest.raises(ValueError, match="synthetic scenes are 8-bit"):
        build_dataset(FinetuneConfig(input_scaling="window 20..40 degC", synthetic_train=2).resolved(), "train")


def test_input_scaling_command_line_option():
    import argparse

    from unip_hub.train.config import add_dataclass_arguments
    from unip_hub.train.finetune_config import config_from_options

    parser = add_dataclass_arguments(argparse.ArgumentParser(), FinetuneConfig, suppress_defaults=True)
    given = parser.parse_args(["--input-scaling", "window -10..50 degC"])
    assert config_from_options(given).resolved().input_scaling == "window -10..50 degC"
    assert config_from_options(parser.parse_args([])).input_scaling == "percentile 0.5/99.5"
    assert "--input-scaling" in parser.format_help()


def test_datasets_are_read_with_the_input_scaling(tmp_path):
    root = write_radiometric_dataset(tmp_path / "data")
    window = InputScaling.parse("window 20..40 degC")
    cfg = FinetuneConfig(dataset="folder", data_root=str(root), input_scaling=str(window))
    test = build_dataset(cfg.resolved(), "test")
    default = build_dataset(replace(cfg, input_scaling="percentile 0.5/99.5").resolved(), "test")
    assert test.input_scaling == window and default.input_scaling == InputScaling()  # one reading for every spec
    for i, (image_path, _) in enumerate(test.samples):
        gray = window.to_gray(read_radiometric(image_path))
        assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255  # 10..61 degC clipped to 20..40
        torch.testing.assert_close(test[i][0], normalize(gray), rtol=0, atol=0)
        assert not torch.equal(test[i][0], default[i][0])  # percentile bounds give other gray levels
        # the default spec through the radiometric reader is read_thermal's gray, bit for bit (research parity)
        torch.testing.assert_close(default[i][0], normalize(read_thermal(image_path)), rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ learning
@pytest.mark.slow
def test_short_finetune_lowers_loss_and_beats_chance(tmp_path):
    cfg = tiny_config(tmp_path, iterations=30, eval_interval=15, log_interval=5, tensorboard=True)
    result = finetune(cfg)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 30 and result.iteration == 30
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    test = SyntheticThermalDataset(4, (64, 80), seed=cfg.seed + 10_000)
    chance = majority_miou([test.scene(i)[1] for i in range(len(test))], 7)
    assert result.best_mIoU > chance + 0.1, (result.best_mIoU, chance)
    for name in ("last.pth", "best.pth", "log.csv", "eval.json", "config.json"):
        assert (tmp_path / name).is_file(), name
    assert any((tmp_path / "tb").iterdir())
    rows = read_log(tmp_path / "log.csv")
    assert [int(r["iteration"]) for r in rows if r["kind"] == "eval"] == [15, 30]
    assert [int(r["iteration"]) for r in rows if r["kind"] == "train"] == [5, 10, 15, 20, 25, 30]
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["iteration"] == 30 and saved["mIoU"] == pytest.approx(result.final["mIoU"])
    assert set(saved["per_class"]) == set(SyntheticThermalDataset.CLASSES)


@pytest.mark.slow
def test_resume_continues_the_same_run(tmp_path):
    full = finetune(tiny_config(tmp_path / "a", iterations=8, eval_interval=4))
    cut = tiny_config(tmp_path / "b", iterations=8, eval_interval=4)
    first = finetune(cut, stop_after=3)  # as if killed after iteration 3 (last.pth saved there)
    assert first.iteration == 3 and read_checkpoint(tmp_path / "b" / "last.pth")["iteration"] == 3
    rest = finetune(replace(cut, resume="auto"))
    assert [h["iteration"] for h in rest.history] == list(range(4, 9))
    assert [h["loss"] for h in rest.history] == pytest.approx([h["loss"] for h in full.history[3:]], abs=1e-6)
    a = read_checkpoint(tmp_path / "a" / "last.pth")
    b = read_checkpoint(tmp_path / "b" / "last.pth")
    assert a["iteration"] == b["iteration"] == 8
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=1e-6, msg=k)
    assert b["best_mIoU"] == pytest.approx(a["best_mIoU"])
    iters = [int(r["iteration"]) for r in read_log(tmp_path / "b" / "log.csv")]
    assert iters == sorted(iters)  # one consistent log, no duplicated stretch


@pytest.mark.slow
def test_resume_refuses_other_settings_and_missing_files(tmp_path):
    cfg = tiny_config(tmp_path, iterations=4, eval_interval=4)
    finetune(cfg, stop_after=2)
    with pytest.raises(ValueError, match="lr"):
        finetune(replace(cfg, lr=5e-4, resume="auto"))
    with pytest.raises(FileNotFoundError):
        finetune(replace(cfg, resume=str(tmp_path / "nope.pth")))


@pytest.mark.slow
def test_checkpoints_load_as_segmenters(tmp_path):
    result = finetune(tiny_config(tmp_path, iterations=4, eval_interval=4))
    sd = read_checkpoint(tmp_path / "best.pth")["state_dict"]
    for seg in (load_segmenter(tmp_path / "best.pth"),
                create_segmenter("unip_vit_tiny", num_classes=7, checkpoint=tmp_path / "best.pth", img_size=64,
                                 **TINY_BACKBONE)):
        assert seg.class_names == list(SyntheticThermalDataset.CLASSES)
        for k, v in seg.state_dict().items():
            assert torch.equal(v, sd[k]), k
    x = torch.randn(1, 3, 64, 80)
    torch.testing.assert_close(load_segmenter(tmp_path / "best.pth").eval()(x), result.model.eval()(x))


@pytest.mark.slow
def test_linear_probe_trains_only_the_head(tmp_path):
    cfg = tiny_config(tmp_path, iterations=3, eval_interval=3, linear_probe=True,
                      backbone_kwargs={"depth": 12, "embed_dim": 32, "num_heads": 2})
    torch.manual_seed(cfg.seed)
    initial = build_segmenter(cfg.resolved(), list(SyntheticThermalDataset.CLASSES))
    finetune(cfg)
    ckpt = read_checkpoint(tmp_path / "last.pth")
    assert ckpt["meta"]["head"] == "linear" and ckpt["meta"]["layers"] == [3, 5, 7, 11]
    for k, v in initial.backbone.state_dict().items():
        assert torch.equal(ckpt["state_dict"]["backbone." + k], v), k
    assert not torch.equal(ckpt["state_dict"]["decode_head.conv_seg.weight"], initial.decode_head.conv_seg.weight)
    n_head = sum(1 for _ in initial.decode_head.parameters())
    assert len(ckpt["optimizer"]["state"]) == n_head


@pytest.mark.slow
def test_window_scaling_travels_in_the_checkpoints(tmp_path):
    root = write_radiometric_dataset(tmp_path / "data")
    cfg = tiny_config(tmp_path / "run", dataset="folder", data_root=str(root), input_scaling="window 20..40 degc",
                      iterations=2, eval_interval=2, batch_size=2, crop_size=32, scale=(64, 32))
    finetune(cfg)
    for name in ("best.pth", "last.pth"):
        ckpt = read_checkpoint(tmp_path / "run" / name)
        assert ckpt["meta"]["input_scaling"] == ckpt["config"]["input_scaling"] == "window 20..40 degC"
        assert load_segmenter(tmp_path / "run" / name).input_scaling == "window 20..40 degC"
    with pytest.raises(ValueError, match="input_scaling"):  # resuming with another spec is another run
        finetune(replace(cfg, input_scaling="percentile 1/99", resume="auto"))
    finetune(replace(cfg, input_scaling="Window 20..40", resume="auto"))  # the same spec, written differently


@pytest.mark.slow
def test_runs_saved_before_input_scaling_resume_with_the_default(tmp_path):
    cfg = tiny_config(tmp_path, iterations=3, eval_interval=3)
    finetune(cfg, stop_after=1)
    state = read_checkpoint(tmp_path / "last.pth")
    del state["config"]["input_scaling"], state["meta"]["input_scaling"]  # as written by older versions
    torch.save(state, tmp_path / "last.pth")
    assert load_segmenter(tmp_path / "last.pth").input_scaling == "percentile 0.5/99.5"
    assert finetune(replace(cfg, resume="auto")).iteration == 3


# ---------------------------------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_finetune_and_resume(tmp_path, capsys):
    args = ["finetune", "--dataset", "synthetic", "--arch", "unip_vit_tiny", "--crop-size", "32", "--batch-size",
            "2", "--iterations", "3", "--warmup", "1", "--eval-interval", "3", "--synthetic-train", "4",
            "--synthetic-test", "2", "--synthetic-size", "32", "48", "--num-workers", "0", "--no-progress",
            "--no-tensorboard", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    assert "best mIoU" in capsys.readouterr().out
    saved = read_checkpoint(tmp_path / "last.pth")
    assert saved["iteration"] == 3 and saved["config"]["crop_size"] == 32 and saved["config"]["warmup"] == 1
    assert saved["meta"]["arch"] == "unip_vit_tiny" and saved["meta"]["input_scaling"] == "percentile 0.5/99.5"
    # resuming a finished run from the file alone: the settings come from the checkpoint, nothing is retrained
    assert main(["finetune", "--resume", str(tmp_path / "last.pth"), "--no-progress"]) == 0
    assert read_checkpoint(tmp_path / "last.pth")["iteration"] == 3
    assert main(["finetune", "--resume", str(tmp_path / "last.pth"), "--lr", "1"]) == 2  # changed setting: error
    assert "cannot resume" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from unip_hub.train import dist as udist

    result = finetune(tiny_config(out, iterations=4, eval_interval=4, log_interval=2, device="cpu"))
    params = {k: v.detach().clone() for k, v in result.model.named_parameters()}
    torch.save({"params": params, "losses": [h["loss"] for h in result.history], "mIoU": result.final["mIoU"]},
               f"{out}/rank{rank}.pt")
    udist.cleanup()


@pytest.mark.slow
def test_two_process_ddp_on_gloo(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for k, v in r0["params"].items():  # gradients were averaged: both replicas hold the same weights
        torch.testing.assert_close(r1["params"][k], v, msg=k)
    assert r0["losses"] != r1["losses"]  # each rank saw its own half of every batch
    assert r0["mIoU"] == r1["mIoU"]  # the sharded evaluation's counts were summed across ranks
    ckpt = read_checkpoint(tmp_path / "last.pth")
    assert ckpt["iteration"] == 4 and len(ckpt["rng"]) == 2
    assert [int(r["iteration"]) for r in read_log(tmp_path / "log.csv") if r["kind"] == "train"] == [2, 4]


@pytest.mark.slow
def test_torchrun_cli_two_cpu_processes(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "unip_hub", "finetune", "--dataset", "synthetic", "--arch", "unip_vit_tiny", "--crop-size", "32",
           "--batch-size", "4", "--iterations", "2", "--warmup", "1", "--synthetic-train", "8", "--synthetic-test",
           "2", "--synthetic-size", "32", "48", "--num-workers", "0", "--device", "cpu", "--no-progress",
           "--no-tensorboard", "--out-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("best mIoU") == 1  # only rank 0 reports
    ckpt = read_checkpoint(tmp_path / "last.pth")
    assert ckpt["iteration"] == 2 and len(ckpt["rng"]) == 2
