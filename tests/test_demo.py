"""``unip demo``: the quick variant runs end to end and writes every promised output."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from unip_hub.checkpoints import read_checkpoint
from unip_hub.cli import main
from unip_hub.train.demo import QUICK_SCENE_SIZE, demo_config, run_demo


def test_demo_config_is_unip_t_llfpn_upernet(tmp_path):
    cfg = demo_config(tmp_path, 200).resolved()
    assert (cfg.arch, cfg.head, cfg.neck, cfg.weights) == ("unip_vit_tiny", "upernet", "last", None)
    assert (cfg.aux_weight, cfg.layer_decay, cfg.drop_path) == (0.4, 0.85, 0.1)
    assert cfg.warmup == 20 and cfg.eval_interval == 50
    assert demo_config(tmp_path, 10, weights="w.pth").weights == "w.pth"


@pytest.mark.slow
def test_quick_demo_writes_all_outputs(tmp_path, capsys):
    result = run_demo(tmp_path, iterations=6, quick=True, progress=False)
    h, w = QUICK_SCENE_SIZE
    assert len(result.overlays) == 4
    for path in result.overlays:
        assert Image.open(path).size == (3 * (w + 4), h)
    assert result.curves is not None and Image.open(result.curves).size[0] > 500
    assert result.run.iteration == 6 and result.run.best_mIoU > result.baseline_mIoU
    ckpt = read_checkpoint(tmp_path / "run" / "best.pth")
    assert ckpt["meta"]["arch"] == "unip_vit_tiny" and ckpt["meta"]["class_names"][1] == "sky"
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["iteration"] == 6
    out = capsys.readouterr().out
    assert "majority-class baseline" in out and "vegetation" in out


@pytest.mark.slow
def test_cli_demo_quick(tmp_path):
    assert main(["demo", "--quick", "--iterations", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "overlays" / "scene_00.png").is_file()
    assert main(["demo", "--quick", "--iterations", "2", "--out", str(tmp_path / "x"),
                 "--weights", str(tmp_path / "missing.pth")]) == 2
