"""Detection training on the shared core: a few steps on synthetic scenes, a SIGKILL then an exact resume, the best
checkpoint by AP, the multi-step schedule, ``unip finetune --task detection`` options and ``unip eval --task
detection``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("faster_coco_eval")

from unip_hub.checkpoints import read_checkpoint
from unip_hub.cli import build_parser, main
from unip_hub.detection.train_config import DetectionConfig, config_from_options, detection_dataset
from unip_hub.train.logger import read_log
from unip_hub.train.lr import multistep_lr

TINY = {"depth": 2, "embed_dim": 64, "num_heads": 2, "out_channels": 32}
SMALL_HEADS = {"rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100, "rpn_pre_nms_top_n_test": 100,
               "rpn_post_nms_top_n_test": 50, "box_batch_size_per_image": 64}


def tiny_detection(out_dir: str | Path, **overrides) -> DetectionConfig:
    """A seconds-long run: a 2-block 64-wide ViT, 32-channel FPN, 64x80 synthetic scenes, batch 2."""
    cfg = dict(data="synthetic", arch="unip_vit_tiny", model_kwargs=dict(TINY), detector_kwargs=dict(SMALL_HEADS),
               iterations=4, warmup=1, batch_size=2, lr=1e-3, eval_interval=2, log_interval=1, synthetic_train=8,
               synthetic_test=2, synthetic_size=(64, 80), num_workers=0, out_dir=str(out_dir), progress=False,
               tensorboard=False, seed=0)
    cfg.update(overrides)
    return DetectionConfig(**cfg)


def test_recipe_defaults_and_schedule():
    cfg = DetectionConfig(data="flir", root="x").resolved(train_size=8862)
    assert (cfg.iterations, cfg.warmup, cfg.size, cfg.batch_size) == (53_172, 250, 1024, 2)
    assert (cfg.lr, cfg.weight_decay, cfg.layer_decay, cfg.seed, cfg.head) == (1e-4, 0.1, 0.7, 42, "faster_rcnn")
    assert cfg.scale_range == (0.1, 2.0) and cfg.eval_interval == 5317
    assert DetectionConfig(synthetic_size=(128, 160)).crop_size() == 160
    lrs = [multistep_lr(i, 53_172, 1e-4, 250) for i in (0, 125, 250, 35_447, 35_448, 48_741, 53_171)]
    assert lrs == pytest.approx([1e-7, 0.5005e-4, 1e-4, 1e-4, 1e-5, 1e-6, 1e-6])
    with pytest.raises(ValueError, match="multiple of 16"):
        DetectionConfig(size=100, iterations=1).resolved()
    with pytest.raises(ValueError, match="--data coco needs --images and --annotations"):
        detection_dataset(DetectionConfig(data="coco"), "train")
    with pytest.raises(ValueError, match="--val-annotations"):
        detection_dataset(DetectionConfig(data="coco", images="a", annotations="b", val_images="c"), "val")
    with pytest.raises(ValueError, match="--root is required for --data flir"):
        detection_dataset(DetectionConfig(data="flir"), "train")


def test_cli_options_belong_to_their_task(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["finetune", "--task", "detection", "--data", "coco", "--images", "im", "--annotations",
                              "a.json", "--head", "retinanet", "--lr", "2e-4"])
    cfg = config_from_options({k: v for k, v in vars(args).items() if k not in ("func", "command", "task")})
    assert (cfg.data, cfg.images, cfg.head, cfg.lr, cfg.weight_decay) == ("coco", "im", "retinanet", 2e-4, 0.1)
    assert main(["finetune", "--data", "coco"]) == 2  # a detection option without --task detection
    assert main(["finetune", "--task", "detection", "--neck", "multi"]) == 2  # a segmentation-only option
    assert main(["finetune", "--task", "detection", "--head", "upernet"]) == 2
    assert main(["finetune", "--head", "retinanet"]) == 2


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_exactly(tmp_path):
    from unip_hub.detection.train import train_detector

    full = train_detector(tiny_detection(tmp_path / "a"))
    assert full.iteration == 4 and len(full.history) == 4
    # the same run in another process, SIGKILLed while iteration 4 runs (last.pth holds iteration 2)
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_detection_train import tiny_detection
        from unip_hub.detection import train as T
        calls = []
        real = T.DetectionLoss.__call__
        def dying(self, model, batch):
            calls.append(1)
            if len(calls) == 4:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, model, batch)
        T.DetectionLoss.__call__ = dying
        T.train_detector(tiny_detection({str(tmp_path / "b")!r}))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same float sums as this process
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert read_checkpoint(tmp_path / "b" / "last.pth")["iteration"] == 2
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]  # no half-written file left
    rest = train_detector(replace(tiny_detection(tmp_path / "b"), resume="auto"))  # the same command line again
    assert [h["iteration"] for h in rest.history] == [3, 4]
    assert [h["loss"] for h in rest.history] == [h["loss"] for h in full.history[2:]]  # bit for bit
    a, b = read_checkpoint(tmp_path / "a" / "last.pth"), read_checkpoint(tmp_path / "b" / "last.pth")
    assert a["iteration"] == b["iteration"] == 4
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    assert b["evals"] == a["evals"]
    iters = [int(r["iteration"]) for r in read_log(tmp_path / "b" / "log.csv")]
    assert iters == sorted(iters) and iters.count(2) == 2  # one train row and one eval row at 2, no duplicates
    with pytest.raises(ValueError, match="lr"):  # another run's settings are refused
        train_detector(replace(tiny_detection(tmp_path / "b"), lr=5e-4, resume="auto"))


@pytest.mark.slow
def test_best_checkpoint_is_kept_by_ap_and_loads_as_detector(tmp_path, monkeypatch, capsys):
    from unip_hub.detection import load_detector
    from unip_hub.detection import train as T

    scripted = iter([0.10, 0.30, 0.20])
    real = T.evaluate_detector

    def evaluate(*args, **kwargs):
        result = real(*args, **kwargs)
        return {**result, "AP": next(scripted)}

    monkeypatch.setattr(T, "evaluate_detector", evaluate)
    result = T.train_detector(tiny_detection(tmp_path, iterations=3, eval_interval=1, tensorboard=True))
    monkeypatch.undo()
    assert (result.best_AP, result.best_iteration) == (0.30, 2)
    assert read_checkpoint(tmp_path / "best.pth")["iteration"] == 2
    assert read_checkpoint(tmp_path / "last.pth")["iteration"] == 3
    assert json.loads((tmp_path / "eval.json").read_text())["iteration"] == 3
    rows = read_log(tmp_path / "log.csv")
    assert [float(r["AP"]) for r in rows if r["kind"] == "eval"] == [0.1, 0.3, 0.2]
    assert {"loss_classifier", "loss_objectness"} <= {k for r in rows if r["kind"] == "train" for k in r if r[k]}
    assert any((tmp_path / "tb").iterdir())
    det = load_detector(tmp_path / "best.pth")
    assert det.class_names == ["person", "car"] and det.input_scaling == "percentile 0.5/99.5"
    assert not det.training
    # unip eval --task detection on held-out synthetic scenes, with the miss rate of the person class
    out = tmp_path / "metrics.json"
    assert main(["eval", "--task", "detection", "--model", str(tmp_path / "best.pth"), "--data", "synthetic",
                 "--synthetic-test", "2", "--synthetic-size", "64", "80", "--miss-rate", "--num-workers", "0",
                 "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "AP50" in printed and "MR^-2" in printed and "person" in printed
    saved = json.loads(out.read_text())
    assert saved["images"] == 2 and 0 <= saved["AP50"] <= 1 and 0 <= saved["MR-2"] <= 1
    assert main(["eval", "--task", "detection", "--model", str(tmp_path / "best.pth"), "--data", "coco"]) == 2
    # unip finetune --resume FILE: the task and the settings come from the file (a finished run: nothing to do)
    assert main(["finetune", "--resume", str(tmp_path / "last.pth"), "--no-progress"]) == 0
    assert "done: 3 iterations, best AP 30.00 at iteration 2" in capsys.readouterr().out


def test_torchrun_two_cpu_processes(tmp_path):
    """``torchrun --nproc_per_node 2 -m unip_hub finetune --task detection``: DDP on gloo, one report, one checkpoint
    holding both ranks' random states."""
    from helpers.training import free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "unip_hub", "finetune", "--task", "detection", "--data", "synthetic", "--arch", "unip_vit_tiny",
           "--size", "64", "--batch-size", "2", "--iterations", "2", "--warmup", "1", "--synthetic-train", "8",
           "--synthetic-test", "2", "--synthetic-size", "64", "80", "--num-workers", "0", "--device", "cpu",
           "--no-progress", "--no-tensorboard", "--eval-interval", "2", "--out-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: 2 iterations") == 1  # only rank 0 reports
    ckpt = read_checkpoint(tmp_path / "last.pth")
    assert ckpt["iteration"] == 2 and len(ckpt["rng"]) == 2 and ckpt["task"] == "detection"
    assert (tmp_path / "best.pth").is_file() and json.loads((tmp_path / "eval.json").read_text())["iteration"] == 2


def test_mask_rcnn_trains_on_instance_masks_and_reports_mask_ap(tmp_path):
    """``--head mask_rcnn``: the data gives instance masks (here the synthetic scenes' blobs), the evaluation adds
    the COCO statistics of the masks (``mask_AP``...) to eval.json and log.csv."""
    from unip_hub.detection.train import train_detector

    result = train_detector(tiny_detection(tmp_path, head="mask_rcnn", iterations=2, eval_interval=2))
    assert {"mask_AP", "mask_AP50", "mask_APs"} <= set(result.final)
    assert 0.0 <= result.final["mask_AP"] <= 1.0
    assert "mask_AP" in json.loads((tmp_path / "eval.json").read_text())
    assert read_log(tmp_path / "log.csv")[-1]["mask_AP"] != ""
    with pytest.raises(ValueError, match="mask_rcnn needs instance masks"):
        detection_dataset(replace(tiny_detection(tmp_path, head="mask_rcnn"), data="llvip", root=str(tmp_path)))
