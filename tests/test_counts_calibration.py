"""16-bit count images (TLinear) in fine-tuning and evaluation: ``--counts-to-celsius GAIN OFFSET`` makes them
temperatures for a window scaling, travels with the checkpoint beside the input scaling, is applied by eval and
the Predictor unless overridden, shown by ``unip info``, and checked on resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.training import tiny_config

from unip_hub.checkpoints import read_checkpoint
from unip_hub.cli import main
from unip_hub.data.radiometric import Calibration, read_radiometric
from unip_hub.data.scaling import InputScaling
from unip_hub.data.transforms import normalize
from unip_hub.hub.segmenters import load_segmenter
from unip_hub.train.finetune import FinetuneConfig, build_dataset, finetune

BOSON = (0.01, -273.15)  # TLinear: 0.01 K per count
WINDOW = "window 20..40 degC"


def write_counts_dataset(root: Path, n_train: int = 4, n_test: int = 2, size: tuple[int, int] = (32, 48)) -> Path:
    """A folder dataset of synthetic scenes as 16-bit TLinear counts (10..61 degC at 0.01 K per count) in PNGs."""
    from PIL import Image

    from unip_hub.data.synthetic import SYNTHETIC_CLASSES, make_scene

    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            gray, label = make_scene(*size, np.random.default_rng((seed, i)))
            celsius = 10.0 + 0.2 * gray.astype(np.float64)
            counts = np.round((celsius - BOSON[1]) / BOSON[0]).astype(np.uint16)  # (H, W) ~ 28,000..33,500
            Image.fromarray(counts).save(root / "images" / split / f"{i:03d}.png")
            Image.fromarray(label).save(root / "labels" / split / f"{i:03d}.png")
    (root / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES) + "\n")
    return root


def _config(root: Path, out: Path, **overrides) -> FinetuneConfig:
    return tiny_config(out, dataset="folder", data_root=str(root), input_scaling=WINDOW, iterations=2,
                       eval_interval=2, batch_size=2, crop_size=32, scale=(64, 32), **overrides)


def test_counts_setting_is_canonical_and_refused_when_bad():
    assert FinetuneConfig(counts_to_celsius=[1, "-2"]).resolved().counts_to_celsius == (1.0, -2.0)
    assert FinetuneConfig().resolved().counts_to_celsius is None
    with pytest.raises(ValueError, match="counts_to_celsius"):
        FinetuneConfig(counts_to_celsius=(0, 1)).resolved()


def test_count_images_are_read_as_temperatures_with_the_calibration(tmp_path):
    root = write_counts_dataset(tmp_path / "data", n_train=1, n_test=1)
    test = build_dataset(_config(root, tmp_path / "run", counts_to_celsius=BOSON).resolved(), "test")
    path = test.samples[0][0]
    expected = InputScaling.parse(WINDOW).to_gray(read_radiometric(path, Calibration(counts_to_celsius=BOSON)))
    assert 0 < expected.mean() < 255  # the window cuts the 10..61 degC scene somewhere inside
    torch.testing.assert_close(test[0][0], normalize(expected), rtol=0, atol=0)
    uncalibrated = build_dataset(_config(root, tmp_path / "run").resolved(), "test")
    with pytest.raises(ValueError, match="counts"):  # a window on counts without a calibration: a clear error
        uncalibrated[0]


def test_linear_calibration_gives_the_per_count_table_it_used():
    """16-bit counts become temperatures through a table of one value per count: the same numbers as the formula
    per pixel, and the same table that the frame would derive and check from its pixels."""
    from unip_hub.data.frame import Frame

    counts = np.random.default_rng(0).integers(26000, 33000, (24, 32)).astype(np.uint16)
    for gain in (0.01, -0.02):
        frame = read_radiometric(counts, Calibration(counts_to_celsius=(gain, -273.15)))
        formula = (counts.astype(np.float64) * gain - 273.15).astype(np.float32)
        np.testing.assert_array_equal(frame.celsius, formula)
        derived = Frame(counts, frame.celsius, "x", "counts").celsius_per_count()  # from the pixels
        if gain < 0:  # a falling table: not a non-decreasing function, percentiles go through the pixels
            assert frame.celsius_per_count() is None and derived is None
            continue
        present = np.unique(counts)
        np.testing.assert_array_equal(frame.celsius_per_count()[present], derived[present])


@pytest.mark.slow
def test_calibration_travels_with_the_checkpoint(tmp_path, capsys):
    root = write_counts_dataset(tmp_path / "data")
    cfg = _config(root, tmp_path / "run", counts_to_celsius=BOSON)
    finetune(cfg)
    best = tmp_path / "run" / "best.pth"
    ckpt = read_checkpoint(best)
    assert ckpt["meta"]["counts_to_celsius"] == list(BOSON) and tuple(ckpt["config"]["counts_to_celsius"]) == BOSON
    seg = load_segmenter(best)
    assert seg.counts_to_celsius == list(BOSON) and seg.input_scaling == WINDOW

    from unip_hub.inference import Predictor

    assert Predictor(seg).calibration.counts_to_celsius == BOSON  # the checkpoint's, unless given
    assert Predictor(seg, calibration=Calibration(counts_to_celsius=(0.1, 0.0))).calibration.counts_to_celsius \
        == (0.1, 0.0)

    out = tmp_path / "eval.json"  # unip eval reads the counts with the checkpoint's calibration
    assert main(["eval", str(best), "--dataset", "folder", "--data-root", str(root), "--mode", "whole", "--native",
                 "--num-workers", "0", "--no-progress", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["counts_to_celsius"] == list(BOSON) and saved["input_scaling"] == WINDOW
    capsys.readouterr()
    assert main(["info", str(best)]) == 0
    assert json.loads(capsys.readouterr().out)["counts_to_celsius"] == list(BOSON)

    with pytest.raises(ValueError, match="counts_to_celsius"):  # another calibration is another run
        finetune(replace(cfg, counts_to_celsius=(0.04, -273.15), resume="auto"))


def test_eval_and_finetune_accept_the_option():
    import argparse

    from unip_hub.train.config import add_dataclass_arguments
    from unip_hub.train.finetune_config import config_from_options

    parser = add_dataclass_arguments(argparse.ArgumentParser(), FinetuneConfig, suppress_defaults=True)
    given = parser.parse_args(["--counts-to-celsius", "0.01", "-273.15", "--input-scaling", WINDOW])
    assert config_from_options(given).resolved().counts_to_celsius == BOSON

    from unip_hub.cli import build_parser

    args = build_parser().parse_args(["eval", "x.pth", "--dataset", "folder", "--counts-to-celsius", "0.01", "-273.15"])
    assert args.counts_to_celsius == list(BOSON)


def test_calibration_and_scaling_travel_in_a_safetensors_folder(tmp_path, capsys):
    from helpers.segmenters import tiny_segmenter

    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint

    seg = tiny_segmenter()
    assert seg.counts_to_celsius is None  # a declared attribute: no calibration unless trained with one
    seg.counts_to_celsius, seg.input_scaling = list(BOSON), WINDOW
    folder = tmp_path / "hf"
    folder.mkdir()
    save_segmenter_checkpoint(seg, folder / "model.safetensors")
    loaded = load_segmenter(folder)
    assert loaded.counts_to_celsius == list(BOSON) and loaded.input_scaling == WINDOW
    assert main(["info", str(folder)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["counts_to_celsius"] == list(BOSON) and shown["input_scaling"] == WINDOW
