"""``unip segment`` on every input format the package reads: masks of the input size, palette colours, overlays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.segmenters import PALETTE, tiny_segmenter, write_mmseg_checkpoint
from PIL import Image

from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
from unip_hub.cli import main
from unip_hub.inference import Predictor, colorize, list_inputs, overlay, palette_array


def _inputs(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (45, 60), dtype=np.uint8)).save(folder / "gray8.png")
    raw = rng.integers(6700, 7100, (50, 70)).astype(np.uint16)
    Image.fromarray(raw).save(folder / "radiometric16.png")  # I;16
    Image.fromarray(raw[:33, :41]).save(folder / "radiometric16.tif")
    rgbt = rng.integers(0, 256, (40, 64, 4), dtype=np.uint8)  # MFNet R, G, B, thermal
    Image.fromarray(rgbt, "RGBA").save(folder / "mfnet.png")
    Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)).save(folder / "colormap.jpg")
    (folder / "sub").mkdir()
    np.save(folder / "sub" / "frame.npy", rng.normal(300.0, 5.0, (20, 30)).astype(np.float32))
    return {"gray8": (45, 60), "radiometric16": (50, 70), "radiometric16.tif": (33, 41), "mfnet": (40, 64),
            "colormap": (33, 47), "sub/frame": (20, 30)}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    seg = tiny_segmenter(seed=4, palette=PALETTE)
    return save_segmenter_checkpoint(seg, tmp_path_factory.mktemp("m") / "seg.pth")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["slide", "whole"])
def test_every_format_segmented(tmp_path, model_file, mode, capsys):
    sizes = _inputs(tmp_path / "in")
    sizes["radiometric16.png"] = sizes.pop("radiometric16")  # .png and .tif share a stem: both keep suffixes
    sizes["radiometric16.tif"] = sizes.pop("radiometric16.tif")
    out = tmp_path / "out"
    rc = main(["segment", str(tmp_path / "in"), "--model", str(model_file), "--out", str(out), "--mode", mode,
               "--crop-size", "32", "--stride", "21", "--quiet", "--json"])
    assert rc == 0
    assert len(__import__("json").loads(capsys.readouterr().out)) == len(sizes)
    colours = {tuple(c) for c in PALETTE}
    for name, (h, w) in sizes.items():
        mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        color = np.asarray(Image.open(out / "color" / f"{name}.png"))
        over = np.asarray(Image.open(out / "overlay" / f"{name}.png"))
        assert mask.shape == (h, w) and mask.dtype == np.uint8 and mask.max() < 5
        assert color.shape == over.shape == (h, w, 3)
        assert {tuple(c) for c in color.reshape(-1, 3)} <= colours
        np.testing.assert_array_equal(color, np.asarray(PALETTE, dtype=np.uint8)[mask])
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_mmseg_checkpoint_through_cli_and_errors(tmp_path, capsys):
    from unip_hub.hub.segmenters import create_segmenter

    torch.manual_seed(0)
    src = create_segmenter("unip_vit_tiny", num_classes=3, img_size=64, depth=2).eval()
    path = write_mmseg_checkpoint(src, tmp_path / "iter_9800.pth")
    Image.fromarray(np.full((37, 29), 120, np.uint8)).save(tmp_path / "a.png")
    rc = main(["segment", str(tmp_path / "a.png"), "--model", str(path), "--out", str(tmp_path / "o"),
               "--mode", "whole", "--quiet"])
    assert rc == 0 and np.asarray(Image.open(tmp_path / "o" / "masks" / "a.png")).shape == (37, 29)
    # the mask equals the model's own prediction on the file
    expect = Predictor(src).predict(tmp_path / "a.png").numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / "masks" / "a.png")), expect)

    obj = torch.load(path, weights_only=True)
    del obj["state_dict"]["decode_head.conv_seg.bias"]
    torch.save(obj, tmp_path / "broken.pth")
    rc = main(["segment", str(tmp_path / "a.png"), "--model", str(tmp_path / "broken.pth"), "--out",
               str(tmp_path / "o2"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "decode_head.conv_seg.bias" in err and not (tmp_path / "o2").exists()
    rc = main(["segment", str(tmp_path / "nothing"), "--model", str(path), "--out", str(tmp_path / "o3")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_rendering_helpers(tmp_path):
    pal = palette_array(3, [[0, 0, 0], [255, 0, 0], [0, 255, 0]])
    mask = np.array([[0, 1], [2, 1]])
    np.testing.assert_array_equal(colorize(mask, pal)[1, 0], [0, 255, 0])
    gray = np.array([[100, 100], [100, 0]], np.uint8)
    np.testing.assert_array_equal(overlay(gray, mask, pal, alpha=0.5)[0], [[50, 50, 50], [178, 50, 50]])
    assert palette_array(21).shape == (21, 3) and tuple(palette_array(21)[0]) == (0, 0, 0)
    with pytest.raises(ValueError, match="palette"):
        palette_array(4, [[0, 0, 0]])
    with pytest.raises(ValueError, match="classes"):
        colorize(np.array([[5]]), pal)
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.npy").write_bytes(b"")
    files, names = list_inputs([tmp_path])
    assert [f.name for f in files] == ["a.npy", "a.png"]
    assert names == ["a.npy", "a.png"]


def test_bad_and_tiny_inputs_one_line_error_nothing_written(tmp_path, model_file, capsys):
    """A decompression bomb and a truncated file are reported and get no file; a 1x1 image is segmented."""
    from test_data import png_claiming

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((1, 1), 90, np.uint8)).save(src / "dot.png")
    Image.fromarray(np.arange(15, dtype=np.uint8).reshape(3, 5) * 9).save(src / "tiny.png")
    (src / "bomb.png").write_bytes(png_claiming(200_000, 200_000))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)).save(src / "full.png")
    (src / "cut.png").write_bytes((src / "full.png").read_bytes()[:800])
    (src / "full.png").unlink()
    out = tmp_path / "out"
    rc = main(["segment", str(src), "--model", str(model_file), "--out", str(out), "--quiet", "--mode", "slide",
               "--crop-size", "24", "--stride", "16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 2
    assert any("bomb.png" in line and "huge image" in line for line in err)
    assert any("cut.png" in line and "not a readable image" in line for line in err)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [f"{k}/{n}.png" for k in ("color", "masks", "overlay") for n in ("dot", "tiny")]
    assert np.asarray(Image.open(out / "masks" / "dot.png")).shape == (1, 1)
    assert np.asarray(Image.open(out / "overlay" / "tiny.png")).shape == (3, 5, 3)
