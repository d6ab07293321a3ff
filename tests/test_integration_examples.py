"""Every integration example runs end to end on its tiny ``--quick`` configuration."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"unip_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["llfpn", "blocks"])
def test_timm_features_example(mode, capsys):
    info = _load("timm_features").main(["--quick", "--mode", mode])
    if mode == "llfpn":
        assert info["reduction"] == [4, 8, 16, 32] and info["shapes"][0] == [1, 64, 16, 16]
    else:
        assert info["reduction"] == [16, 16]
    assert "0.3801" in capsys.readouterr().out


@pytest.mark.slow
def test_smp_example(tmp_path):
    pytest.importorskip("segmentation_models_pytorch")
    out = _load("smp_upernet").main(["--quick", "--out", str(tmp_path / "smp")])
    assert math.isfinite(out["last_loss"]) and (tmp_path / "smp" / "config.json").is_file()


@pytest.mark.slow
def test_transformers_example(tmp_path):
    pytest.importorskip("transformers")
    out = _load("transformers_upernet").main(["--quick", "--out", str(tmp_path / "hf")])
    assert math.isfinite(out["last_loss"]) and out["reload_diff"] < 1e-5
    assert (tmp_path / "hf" / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("mask", [False, True])
def test_detection_example(mask):
    pytest.importorskip("torchvision")
    out = _load("detection_faster_rcnn").main(["--quick"] + (["--mask"] if mask else []))
    assert math.isfinite(out["first_loss"]) and math.isfinite(out["last_loss"])


def test_distill_tiny_cpu_example(tmp_path, capsys):
    curves = _load("distill_tiny_cpu").main(["--quick", "--out", str(tmp_path / "distill")])
    assert len(curves["loss"]) == 6 and all(math.isfinite(v) for v in curves["loss"])
    assert curves["eval_step"] == [0, 3, 6] and 0.0 < curves["teacher_nmi"] < 1.0
    assert (tmp_path / "distill" / "curves.json").is_file() and (tmp_path / "distill" / "curves.png").is_file()
    assert "student last-block NMI" in capsys.readouterr().out


@pytest.mark.slow
def test_tiled_detection_check_example(tmp_path):
    pytest.importorskip("rasterio")
    pytest.importorskip("torchvision")
    report = _load("tiled_detection_check").main(["--quick", "--out", str(tmp_path / "check")])
    assert set(report) >= {"whole", "tiled", "tiled, NMS", "tiled, unmerged"}
    assert report["tiles"] == 12  # 128 x 160 in 64-px tiles, stride 32
    for name in ("whole", "tiled", "tiled, NMS", "tiled, unmerged"):
        assert 0.0 <= report[name]["AP50"] <= 1.0
    assert report["tiled, unmerged"]["detections"] >= report["tiled"]["detections"]  # merging only removes views
    assert (tmp_path / "check" / "report.json").is_file()
