"""``unip demo --task detection``: the quick variant runs end to end and writes every promised output."""

from __future__ import annotations

import json

import pytest
from PIL import Image

pytest.importorskip("torchvision")
pytest.importorskip("faster_coco_eval")

from unip_hub.checkpoints import read_checkpoint
from unip_hub.cli import main
from unip_hub.detection.demo import QUICK_SCENE_SIZE, SCENE_SIZE, demo_config


def test_demo_config_is_unip_t_faster_rcnn(tmp_path):
    cfg = demo_config(tmp_path, 200).resolved()
    assert (cfg.arch, cfg.head, cfg.data, cfg.weights, cfg.size) == ("unip_vit_tiny", "faster_rcnn", "synthetic",
                                                                     None, 160)
    assert (cfg.weight_decay, cfg.layer_decay, cfg.warmup, cfg.eval_interval) == (0.1, 0.85, 20, 50)
    assert cfg.synthetic_size == SCENE_SIZE and cfg.model_kwargs == {"out_channels": 64}
    assert demo_config(tmp_path, 10, weights="w.pth").weights == "w.pth"


@pytest.mark.slow
def test_cli_quick_detection_demo_writes_all_outputs(tmp_path, capsys):
    assert main(["demo", "--task", "detection", "--quick", "--iterations", "2", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "AP50" in out and "random boxes" in out and "per class AP" in out
    h, w = QUICK_SCENE_SIZE
    overlays = sorted((tmp_path / "overlays").iterdir())
    assert len(overlays) == 4 and all(Image.open(p).size == (2 * (2 * w + 4), 2 * h) for p in overlays)  # zoom 2
    assert Image.open(tmp_path / "curves.png").size[0] > 500
    ckpt = read_checkpoint(tmp_path / "run" / "best.pth")
    assert ckpt["task"] == "detection" and ckpt["meta"]["class_names"] == ["person", "car"]
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["iteration"] == 2 and 0 <= saved["AP50"] <= 1
