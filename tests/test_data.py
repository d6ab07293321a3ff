"""Tests of unip_hub.data: readers on every infrared format, pipeline invariants, dataset layouts, synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.samples import shared_samples
from PIL import Image

from unip_hub.data import (
    SEG_MEAN,
    SEG_STD,
    SYNTHETIC_CLASSES,
    FolderSegDataset,
    ImageFolderDataset,
    InfMixDataset,
    MFNetDataset,
    SCUTSegDataset,
    SegTransformConfig,
    SODADataset,
    SyntheticThermalDataset,
    TestPipeline,
    TrainPipeline,
    make_scene,
    read_label,
    read_thermal,
    write_synthetic_dataset,
)
from unip_hub.data.transforms import random_crop, rescale_size

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (24, 32), dtype=np.uint8)
RAW = (6700 + np.linspace(0, 400, 24 * 32).reshape(24, 32)).astype(np.uint16)  # radiometric counts


def expected_scaled(raw: np.ndarray) -> np.ndarray:
    """Independent reference: 0.5th / 99.5th percentiles -> 0 / 255."""
    lo, hi = np.percentile(raw.astype(float), [0.5, 99.5])
    return np.clip(np.round((raw - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def save_palette(label: np.ndarray, path: Path) -> None:
    image = Image.frombytes("P", label.shape[::-1], np.ascontiguousarray(label, dtype=np.uint8).tobytes())
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [7] * (3 * 253))  # colours unrelated to indices
    image.save(path)


# ---------------------------------------------------------------- readers


def test_read_8bit_png_and_jpeg(tmp_path: Path) -> None:
    Image.fromarray(GRAY).save(tmp_path / "a.png")
    Image.fromarray(GRAY).save(tmp_path / "a.jpg", quality=95)
    np.testing.assert_array_equal(read_thermal(tmp_path / "a.png"), GRAY)
    jpeg = read_thermal(str(tmp_path / "a.jpg"))
    assert jpeg.dtype == np.uint8 and jpeg.shape == GRAY.shape
    np.testing.assert_array_equal(jpeg, np.asarray(Image.open(tmp_path / "a.jpg")))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_read_16bit_radiometric(tmp_path: Path, suffix: str) -> None:
    Image.fromarray(RAW).save(tmp_path / f"raw{suffix}")
    assert Image.open(tmp_path / f"raw{suffix}").mode == "I;16"
    out = read_thermal(tmp_path / f"raw{suffix}")
    assert out.dtype == np.uint8 and out.shape == RAW.shape
    np.testing.assert_array_equal(out, expected_scaled(RAW))
    assert out.min() == 0 and out.max() == 255


def test_read_big_endian_int32_and_float_tiff(tmp_path: Path) -> None:
    Image.frombytes("I;16B", RAW.shape[::-1], RAW.astype(">u2").tobytes()).save(tmp_path / "b.tif")
    Image.fromarray(RAW.astype(np.int32)).save(tmp_path / "i.tif")
    floats = RAW.astype(np.float32)
    floats[0, 0] = np.nan
    Image.fromarray(floats).save(tmp_path / "f.tif")
    assert [Image.open(tmp_path / n).mode for n in ("b.tif", "i.tif", "f.tif")] == ["I;16B", "I", "F"]
    np.testing.assert_array_equal(read_thermal(tmp_path / "b.tif"), expected_scaled(RAW))
    np.testing.assert_array_equal(read_thermal(tmp_path / "i.tif"), expected_scaled(RAW))
    out = read_thermal(tmp_path / "f.tif")
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out.max() == 255


def test_constant_radiometric_is_mid_gray(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 7000, np.uint16)).save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_thermal(tmp_path / "c.png"), np.full((8, 8), 128, np.uint8))
    assert (read_thermal(np.full((4, 4), np.nan, np.float32)) == 0).all()


def test_four_channel_png_gives_channel_3(tmp_path: Path) -> None:
    rgbt = RNG.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    Image.fromarray(rgbt).save(tmp_path / "mfnet.png")
    np.testing.assert_array_equal(read_thermal(tmp_path / "mfnet.png"), rgbt[..., 3])
    rgbt[..., 3] = 255  # an opaque ordinary RGBA picture: luma of RGB
    np.testing.assert_array_equal(read_thermal(rgbt), np.asarray(Image.fromarray(rgbt[..., :3]).convert("L")))


def test_rgb_jpeg_and_palette_give_pil_luma(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.jpg")
    np.testing.assert_array_equal(
        read_thermal(tmp_path / "c.jpg"), np.asarray(Image.open(tmp_path / "c.jpg").convert("L"))
    )
    luma = np.round(rgb.astype(float) @ [0.299, 0.587, 0.114])
    assert np.abs(read_thermal(rgb).astype(float) - luma).max() <= 1  # ITU-R 601
    save_palette(np.arange(3, dtype=np.uint8).repeat(4).reshape(3, 4), tmp_path / "p.png")
    np.testing.assert_array_equal(read_thermal(tmp_path / "p.png")[:, 0], [76, 150, 29])  # red, green, blue


def test_numpy_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "raw.npy", RAW)
    np.testing.assert_array_equal(read_thermal(tmp_path / "raw.npy"), expected_scaled(RAW))
    np.testing.assert_array_equal(read_thermal(RAW.astype(np.float64)), expected_scaled(RAW))
    np.testing.assert_array_equal(read_thermal(GRAY[None]), GRAY)  # (1, H, W)
    np.testing.assert_array_equal(read_thermal(GRAY[..., None]), GRAY)  # (H, W, 1)
    chw = np.stack([GRAY, GRAY, GRAY])  # (3, H, W) gray
    np.testing.assert_array_equal(read_thermal(chw), GRAY)
    assert set(np.unique(read_thermal(GRAY > 128))) == {0, 255}


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"this is not an image", "not a readable image")],
)
def test_bad_files_raise_value_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_thermal(path)
    assert str(path) in str(info.value)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` 8-bit gray pixels, with a few bytes of data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [200_000, 12_000])  # above 2x PIL's limit (error) and above 1x (warning)
def test_decompression_bomb_is_a_one_line_error(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(side, side))
    with pytest.raises(ValueError, match="huge image") as info:
        read_thermal(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_png_is_a_one_line_error(tmp_path: Path) -> None:
    Image.fromarray(GRAY).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable image") as info:
        read_thermal(tmp_path / "cut.png")
    assert "cut.png" in str(info.value) and "\n" not in str(info.value)


def test_bad_arrays_and_paths() -> None:
    with pytest.raises(ValueError, match="shape"):
        read_thermal(np.zeros((1, 2, 3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="channels"):
        read_thermal(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        read_thermal(np.zeros((8, 8), np.complex64))
    with pytest.raises(ValueError, match="empty"):
        read_thermal(np.zeros((0, 8), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"nowhere.png"):
        read_thermal("/nonexistent/nowhere.png")


def test_read_label(tmp_path: Path) -> None:
    label = RNG.integers(0, 3, (24, 32)).astype(np.uint8)
    label[0, :4] = 255
    save_palette(label, tmp_path / "l.png")
    out = read_label(tmp_path / "l.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, label)  # indices, not colours
    wide = np.full((4, 4), 300, np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.png")
    assert read_label(tmp_path / "w.png").dtype == np.int64 and read_label(tmp_path / "w.png").max() == 300
    Image.fromarray(RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match=r"colour.png"):
        read_label(tmp_path / "colour.png")




@pytest.mark.skipif(shared_samples() is None, reason="shared/thermal-samples not present")
def test_real_camera_frames() -> None:
    root = shared_samples()
    tiff = read_thermal(root / "example_radiometric.tiff")
    assert tiff.shape == (512, 640) and tiff.min() == 0 and tiff.max() == 255
    for stem in ("frame_000000_raw_uint16", "frame_000000_le_raw_uint16"):
        png, npy = read_thermal(root / "decoded" / f"{stem}.png"), read_thermal(root / "decoded" / f"{stem}.npy")
        np.testing.assert_array_equal(png, npy)
        assert png.dtype == np.uint8 and 50 < png.mean() < 220


# ---------------------------------------------------------------- pipelines

SMALL = SegTransformConfig(crop_size=(32, 32), scale=(128, 32), ratio_range=(0.5, 2.0))


def test_rescale_size_matches_mmcv() -> None:
    assert rescale_size(480, 640, (2048, 512)) == (512, 683)
    assert rescale_size(512, 640, (2048, 512)) == (512, 640)
    assert rescale_size(240, 320, (2048, 512)) == (512, 683)


def test_train_pipeline_shapes_determinism_and_padding() -> None:
    gray, label = make_scene(48, 64, np.random.default_rng(1))
    pipe = TrainPipeline(SMALL)
    image, target = pipe(gray, label, np.random.default_rng(5))
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert target.shape == (32, 32) and target.dtype == torch.int64
    again = pipe(gray, label, np.random.default_rng(5))
    assert torch.equal(image, again[0]) and torch.equal(target, again[1])
    tiny = SegTransformConfig(crop_size=(32, 32), scale=(32, 16), ratio_range=(1.0, 1.0), photometric=False)
    image, target = TrainPipeline(tiny)(gray, label, np.random.default_rng(0))  # 48x64 -> 16x21, padded
    assert image.shape == (3, 32, 32)
    assert (image[:, 16:] == 0).all() and (image[:, :, 21:] == 0).all()
    assert (target[16:] == 255).all() and (target[:, 21:] == 255).all() and (target[:16, :21] != 255).all()


def test_flip_keeps_label_aligned() -> None:
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (40, 1))  # (40, 64) horizontal ramp
    label = (gray >= 128).astype(np.uint8)
    cfg = SegTransformConfig(crop_size=(40, 64), scale=(64, 40), ratio_range=(1.0, 1.0), flip_prob=1.0,
                             photometric=False, cat_max_ratio=1.0)  # fmt: skip
    image, target = TrainPipeline(cfg)(gray, label, np.random.default_rng(0))
    restored = torch.round(image[0] * SEG_STD + SEG_MEAN)
    assert restored[0, 0] == 252 and restored[0, -1] == 0  # flipped
    assert torch.equal(target, (restored >= 128).long())


def test_crop_respects_cat_max_ratio() -> None:
    label = np.zeros((64, 64), np.uint8)
    label[:, :32] = 1
    label[:8] = 255  # ignored rows are not counted
    gray = np.zeros_like(label)
    unchecked_bad = 0
    for seed in range(40):
        _, crop = random_crop(gray, label, (32, 32), np.random.default_rng(seed), cat_max_ratio=0.75)
        counts = np.bincount(crop[crop != 255], minlength=2)
        assert counts.max() / counts.sum() < 0.75
        _, crop = random_crop(gray, label, (32, 32), np.random.default_rng(seed), cat_max_ratio=1.0)
        counts = np.bincount(crop[crop != 255], minlength=2)
        unchecked_bad += counts.max() / counts.sum() >= 0.75
    assert unchecked_bad > 10  # without the rule most crops hold a single class


def test_test_pipeline() -> None:
    gray, label = make_scene(48, 64, np.random.default_rng(2))
    image, target = TestPipeline(SMALL)(gray, label)
    assert image.shape == (3, 32, 43) and torch.equal(target, torch.from_numpy(label).long())
    _, resized = TestPipeline(SMALL, resize_label=True)(gray, label)
    assert resized.shape == (32, 43)


# ---------------------------------------------------------------- datasets


def _pair(image_path: Path, label_path: Path, seed: int, four_channel: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    if four_channel:
        rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(np.dstack([rgb, gray])).save(image_path)
    else:
        Image.fromarray(gray).save(image_path, quality=100)
    save_palette(rng.integers(0, 3, (12, 16)).astype(np.uint8), label_path)
    return gray


def _check_item(dataset, n: int, num_classes: int) -> None:
    assert len(dataset) == n and dataset.num_classes == num_classes == len(dataset.PALETTE)
    assert dataset.ignore_index == 255 and tuple(dataset.PALETTE[0]) == (0, 0, 0)
    assert len(set(dataset.PALETTE)) == num_classes
    image, label = dataset[0]
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert label.shape == (12, 16) and label.dtype == torch.int64 and label.max() <= 2


def test_soda_layout(tmp_path: Path) -> None:
    for i, stem in enumerate(("a", "b", "c")):
        _pair(tmp_path / "JPEGImages" / f"{stem}.jpg", tmp_path / "SegmentationClassPNG" / f"{stem}.png", i)
    (tmp_path / "train_infrared.txt").write_text("a\nb\n")
    (tmp_path / "test_infrared.txt").write_text("c\n")
    _check_item(SODADataset(tmp_path, "train"), 2, 21)
    assert len(SODADataset(tmp_path, "test")) == 1 and SODADataset.CLASSES[-1] == "sidewalk"
    (tmp_path / "test_infrared.txt").write_text("c\nd\n")
    with pytest.raises(FileNotFoundError, match=r"d.jpg"):
        SODADataset(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match=r"train_infrared.txt"):
        SODADataset(tmp_path / "JPEGImages", "train")


@pytest.mark.parametrize("four_channel", [False, True])
def test_mfnet_layouts(tmp_path: Path, four_channel: bool) -> None:
    folder = "images" if four_channel else "thermal_imgs"
    grays = [_pair(tmp_path / folder / f"{s}.png", tmp_path / "labels" / f"{s}.png", i, four_channel)
             for i, s in enumerate(("00001D", "00002N"))]  # fmt: skip
    (tmp_path / "train.txt").write_text("00001D\n")
    (tmp_path / "val_test.txt").write_text("00002N\n")
    dataset = MFNetDataset(tmp_path, "test")
    _check_item(dataset, 1, 9)
    assert dataset.four_channel is four_channel
    expected = (torch.from_numpy(grays[1]).float() - SEG_MEAN) / SEG_STD
    assert torch.allclose(dataset[0][0][1], expected)  # the thermal channel, not the RGB luma


def test_scut_layout_and_missing_label(tmp_path: Path) -> None:
    for i, stem in enumerate(("x", "y")):
        _pair(tmp_path / "images" / f"{stem}.jpg", tmp_path / "labels" / f"{stem}.png", i)
    (tmp_path / "train.txt").write_text("x\n")
    (tmp_path / "val.txt").write_text("y\n")
    _check_item(SCUTSegDataset(tmp_path, "val"), 1, 10)
    (tmp_path / "labels" / "x.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"x.png"):
        SCUTSegDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown split"):
        SCUTSegDataset(tmp_path, "holdout")


def test_folder_dataset_and_seeded_pipeline(tmp_path: Path) -> None:
    for i, stem in enumerate(("p", "q")):
        _pair(tmp_path / "img" / f"{stem}.png", tmp_path / "lab" / f"{stem}.png", i)
    dataset = FolderSegDataset(tmp_path / "img", tmp_path / "lab", classes=("bg", "a", "b"))
    _check_item(dataset, 2, 3)
    cfg = SegTransformConfig(crop_size=(8, 8), scale=(16, 12), cat_max_ratio=1.0)
    seeded = FolderSegDataset(tmp_path / "img", tmp_path / "lab", ("bg", "a", "b"), pipeline=TrainPipeline(cfg), seed=3)
    first = [seeded[0][0] for _ in range(2)]
    assert first[0].shape == (3, 8, 8) and torch.equal(first[0], first[1])
    (tmp_path / "img" / "r.png").write_bytes((tmp_path / "img" / "p.png").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"r.png"):
        FolderSegDataset(tmp_path / "img", tmp_path / "lab", classes=("bg", "a", "b"))


def test_image_folder_and_infmix(tmp_path: Path) -> None:
    gray = Image.fromarray(GRAY)
    for rel in ("ds1/thermal/a.jpg", "ds1/thermal/b.JPEG", "ds1/thermal/c.png", "ds2/thermal/d.bmp",
                "ds2/visible/ignored.png", "in/n01/1.JPEG", "in/n01/2.JPEG", "in/n01/3.JPEG", "in/n02/1.JPEG",
                "coco/train2017/000.jpg", "coco/train2017/001.jpg"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        gray.convert("RGB").save(tmp_path / rel)
    (tmp_path / "ds1" / "thermal" / "notes.txt").write_text("not an image")
    images = ImageFolderDataset(tmp_path / "ds1")
    assert len(images) == 3
    item = images[0]
    assert item.mode == "RGB" and np.array_equal(np.asarray(item)[..., 0], np.asarray(item)[..., 2])
    mix = InfMixDataset(tmp_path, imagenet_root=tmp_path / "in", imagenet_per_class=2, coco_root=tmp_path / "coco",
                        transform=lambda im: torch.from_numpy(np.array(im)).permute(2, 0, 1))  # fmt: skip
    assert mix.counts == {"infrared": 4, "imagenet": 3, "coco": 2} and len(mix) == 9
    assert [p.name for p in mix.files[4:7]] == ["1.JPEG", "2.JPEG", "1.JPEG"]
    assert mix[8].shape == (3, 24, 32)


# ---------------------------------------------------------------- synthetic scenes


def test_synthetic_scenes() -> None:
    gray, label = make_scene(64, 80, np.random.default_rng(7))
    assert gray.shape == label.shape == (64, 80) and gray.dtype == label.dtype == np.uint8
    again = make_scene(64, 80, np.random.default_rng(7))
    assert np.array_equal(gray, again[0]) and np.array_equal(label, again[1])
    seen, means = set(), {c: [] for c in range(len(SYNTHETIC_CLASSES))}
    for i in range(6):
        gray, label = make_scene(64, 80, np.random.default_rng((0, i)))
        seen |= set(np.unique(label).tolist())
        for c in np.unique(label):
            means[int(c)].append(gray[label == c].mean())
    assert seen == set(range(len(SYNTHETIC_CLASSES)))
    sky, road, veg, person = (
        np.mean(means[SYNTHETIC_CLASSES.index(n)]) for n in ("sky", "road", "vegetation", "person")
    )
    assert sky < veg < road < person  # cool sky, mid-cool trees, warm road, hot people


def test_synthetic_scene_is_stable_for_a_seed() -> None:
    """The demo's mIoU and the tests depend on the exact scenes: pinned bytes of one scene."""
    import hashlib

    gray, label = make_scene(64, 80, np.random.default_rng(7))
    digest = hashlib.sha256(gray.tobytes() + label.tobytes()).hexdigest()
    assert digest == "a5058db06d895463eb5e9906d422d2c7acb17915d59b6794c7b034b050640f47"


def test_synthetic_dataset_and_writer(tmp_path: Path) -> None:
    dataset = SyntheticThermalDataset(3, size=(32, 40), seed=1, pipeline=TrainPipeline(SegTransformConfig(
        crop_size=(16, 16), scale=(40, 32))))  # fmt: skip
    image, label = dataset[2]
    assert image.shape == (3, 16, 16) and label.shape == (16, 16) and dataset.num_classes == 7
    assert torch.equal(image, dataset[2][0])
    root = write_synthetic_dataset(tmp_path / "syn", n_train=2, n_test=1, size=(32, 40), seed=0)
    assert (root / "classes.txt").read_text().split() == list(SYNTHETIC_CLASSES)
    folder = FolderSegDataset(root / "images" / "train", root / "labels" / "train", SYNTHETIC_CLASSES)
    assert len(folder) == 2 and Image.open(root / "labels" / "train" / "00000.png").mode == "P"
    _, label = make_scene(32, 40, np.random.default_rng((0, 0, 0)))
    assert torch.equal(folder[0][1], torch.from_numpy(label).long())


def test_counts_percentiles_and_scaling_equal_the_float_computation():
    """8/16-bit data goes through its histogram and a lookup table: the same bounds and gray levels, exactly."""
    from unip_hub.data.readers import percentile_bounds, scale_to_uint8

    rng = np.random.default_rng(5)
    for trial in range(60):
        top = (1, 255, 300, 65535)[trial % 4]
        values = rng.integers(0, top + 1, int(rng.integers(1, 3000))).astype(np.uint8 if top <= 255 else np.uint16)
        if trial % 7 == 0:
            values[:] = values[0]  # constant: min / max
        low, high = (0.5, 99.5) if trial % 2 else tuple(sorted(rng.uniform(0, 100, 2)))
        floats = values.astype(np.float64)
        expected = tuple(float(v) for v in np.percentile(floats, [low, high]))
        if expected[1] <= expected[0]:
            expected = (float(floats.min()), float(floats.max()))
        assert percentile_bounds(values, low, high) == expected
        if expected[1] > expected[0]:
            np.testing.assert_array_equal(scale_to_uint8(values, *expected), scale_to_uint8(floats, *expected))


def test_normalize_of_8bit_levels_equals_the_float_formula():
    from unip_hub.data.transforms import normalize

    gray = np.random.default_rng(1).integers(0, 256, (37, 41)).astype(np.uint8)
    gray[0, :256 - 41 * 6] = 0
    for mean, std, channels in ((96.9255, 47.8976, 3), (0.0, 1.0, 1), (128.0, 3.5, 2)):
        fast = normalize(gray, mean, std, channels)
        reference = normalize(gray.astype(np.int16), mean, std, channels)  # the float path
        assert fast.dtype == torch.float32 and fast.shape == (channels, 37, 41)
        assert torch.equal(fast, reference)


def test_scene_batch_is_the_normalised_scenes_of_the_generator() -> None:
    from unip_hub.data.synthetic import scene_batch
    from unip_hub.data.transforms import SEG_MEAN, SEG_STD

    x, y = scene_batch(np.random.default_rng(4), 2, 32)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (2, 32, 32) and y.dtype == torch.int64
    rng = np.random.default_rng(4)
    for i in range(2):
        gray, label = make_scene(32, 32, rng)  # the same generator state: the same scenes, in order
        expected = (torch.from_numpy(gray).float() - SEG_MEAN) / SEG_STD
        assert torch.equal(x[i, 0], expected) and torch.equal(x[i, 2], expected)
        assert torch.equal(y[i], torch.from_numpy(label).long())
