"""Our own segmenter checkpoints (.pth / .safetensors with meta) and load_segmenter's reading of settings."""

from __future__ import annotations

import pytest
import torch
from helpers.segmenters import CLASSES, NUM_CLASSES, PALETTE, TINY, tiny_segmenter, write_mmseg_checkpoint

from unip_hub import create_segmenter, load_segmenter
from unip_hub.checkpoints import CheckpointError
from unip_hub.checkpoints.segmenter_files import (
    infer_segmenter_config,
    read_segmenter_checkpoint,
    save_segmenter_checkpoint,
)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_own_checkpoint_round_trip(tmp_path, suffix):
    seg = tiny_segmenter(seed=3, class_names=CLASSES, palette=PALETTE)
    path = save_segmenter_checkpoint(seg, tmp_path / f"best{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    if suffix == ".pth":
        obj = torch.load(path, weights_only=True)  # plain containers only
        assert obj["meta"]["arch"] == "unip_vit_tiny" and obj["meta"]["backbone_kwargs"]["embed_dim"] == 64
    back = load_segmenter(path).eval()  # everything from the meta
    assert back.class_names == list(CLASSES) and back.palette == [tuple(c) for c in PALETTE]
    assert back.config["img_size"] == 128 and back.backbone.embed_dim == 64 and back.auxiliary_head is not None
    x = torch.randn(1, 3, 80, 48)
    with torch.no_grad():
        torch.testing.assert_close(back(x), seg(x))


def test_multi_layer_meta_is_kept_and_enforced(tmp_path):
    seg = create_segmenter("unip_vit_tiny", num_classes=3, neck="multi", layers=[0, 1, 2, 3], **{**TINY, "depth": 4})
    path = save_segmenter_checkpoint(seg, tmp_path / "multi.pth")
    back = load_segmenter(path)
    assert type(back.neck).__name__ == "MultiLayerFPN" and back.layers == [0, 1, 2, 3]
    with pytest.raises(CheckpointError, match="neck='multi'"):
        create_segmenter("unip_vit_tiny", num_classes=3, neck="last", checkpoint=path, **{**TINY, "depth": 4})


def test_mmseg_file_settings_inferred(tmp_path):
    src = tiny_segmenter(seed=2)
    path = write_mmseg_checkpoint(src, tmp_path / "iter_100.pth")
    sd, meta, layout = read_segmenter_checkpoint(path)
    assert layout == "mmseg" and "neck.fpn1.1.running_var" in sd and "backbone.blocks.0.ls1.gamma" in sd
    assert meta["class_names"] == list(CLASSES)
    found = infer_segmenter_config(sd)
    assert found == {"embed_dim": 64, "depth": 2, "num_classes": NUM_CLASSES, "head": "upernet", "aux": True,
                     "img_size": 128, "in_chans": 3, "patch_size": 16, "layer_scale": True, "qkv_bias": True}
    with pytest.raises(ValueError, match="arch"):  # width 64 is no released size
        load_segmenter(path)
    with pytest.raises(CheckpointError, match="width 64"):
        load_segmenter(path, arch="unip_vit_small")
    seg = load_segmenter(path, arch="unip_vit_tiny", embed_dim=64, num_heads=2, aux=False).eval()
    assert seg.auxiliary_head is None and seg.num_classes == NUM_CLASSES
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(seg(x), src(x))


@pytest.mark.slow
def test_released_width_needs_no_arguments(tmp_path):
    torch.manual_seed(0)
    src = create_segmenter("unip_vit_tiny", num_classes=4, img_size=64, depth=2).eval()  # width 192 = UNIP-T
    path = write_mmseg_checkpoint(src, tmp_path / "t.pth", with_norm=False)
    seg = load_segmenter(path).eval()
    assert seg.config["arch"] == "unip_vit_tiny" and seg.backbone.depth == 2 and seg.config["img_size"] == 64
    x = torch.randn(1, 3, 48, 80)
    with torch.no_grad():
        torch.testing.assert_close(seg(x), src(x))


# ------------------------------------------------------------------------------------------------ modes
def test_modes_built_to_train_vs_loaded_trained(tmp_path):
    """timm convention for new models (training mode), from_pretrained's for trained checkpoints (eval mode)."""
    from unip_hub.hub.segmenters import unip_t_upernet

    seg = create_segmenter("unip_vit_tiny", num_classes=NUM_CLASSES, **TINY)
    assert seg.training and all(m.training for m in seg.modules())
    assert unip_t_upernet(num_classes=NUM_CLASSES, pretrained=False, **TINY).training
    path = save_segmenter_checkpoint(tiny_segmenter(seed=4), tmp_path / "best.pth")
    mmseg = write_mmseg_checkpoint(tiny_segmenter(seed=5), tmp_path / "iter_100.pth")
    loaded = [load_segmenter(path), load_segmenter(mmseg, arch="unip_vit_tiny", **TINY),
              create_segmenter("unip_vit_tiny", num_classes=NUM_CLASSES, checkpoint=path, **TINY),
              unip_t_upernet(num_classes=NUM_CLASSES, checkpoint=mmseg, **TINY)]
    for seg in loaded:
        assert not any(m.training for m in seg.modules())
    x = torch.randn(1, 3, 64, 64)  # a batch of one: BatchNorm in training mode would refuse its 1x1 PPM maps
    with torch.no_grad():
        assert loaded[0](x).shape == (1, NUM_CLASSES, 64, 64)
    assert loaded[0].train().training  # fine-tuning further is one call away


def test_frozen_backbone_stays_in_eval_in_training_mode():
    seg = create_segmenter("unip_vit_tiny", num_classes=NUM_CLASSES, head="linear", layers=[0, 1], **TINY)
    assert seg.training and not seg.backbone.training


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_info_describes_segmenter_files(tmp_path, suffix, capsys):
    import json

    from unip_hub.checkpoints import backbone_state_dict, read_checkpoint
    from unip_hub.cli import main
    from unip_hub.hub.hf_folders import describe_checkpoint

    seg = tiny_segmenter(seed=4)
    seg.input_scaling = "window 20..120 degC"
    path = save_segmenter_checkpoint(seg, tmp_path / f"seg{suffix}")
    backbone = backbone_state_dict(read_checkpoint(path))  # the ViT part, in the backbone's own names
    assert set(backbone) == set(seg.backbone.state_dict())
    for k, v in seg.backbone.state_dict().items():
        assert torch.equal(backbone[k], v), k
    info = describe_checkpoint(path)
    assert (info["embed_dim"], info["depth"], info["patch_size"], info["in_chans"]) == (64, 2, 16, 3)
    assert info["img_size"] == 128 and info["input_scaling"] == "window 20..120 degC"
    assert main(["info", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(info))


def test_convert_fine_tuned_segmenter_backbone(tmp_path):
    """A fine-tuned segmenter's backbone (layer scale, trainable position table) converts to an HF folder."""
    from unip_hub.hub.hf_folders import convert_to_hf_folder
    from unip_hub.models.vit import UnipViT

    seg = create_segmenter("unip_vit_tiny", num_classes=3, img_size=64)  # the real ViT-T width and depth
    save_segmenter_checkpoint(seg, tmp_path / "seg.pth", {"classes": ["a", "b", "c"]})
    model = UnipViT.from_pretrained(convert_to_hf_folder(tmp_path / "seg.pth", tmp_path / "hf"))
    theirs = model.state_dict()
    assert "blocks.0.ls1.gamma" in theirs
    for key, value in seg.backbone.state_dict().items():
        if key in theirs:
            assert torch.equal(value, theirs[key]), key


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_checkpoint_is_read_once_by_load_info_and_create(tmp_path, suffix, monkeypatch, capsys):
    import unip_hub.checkpoints.segmenter_files as segmenter_module
    from unip_hub.checkpoints.segmenter_files import SegmenterCheckpoint
    from unip_hub.cli import main

    seg = tiny_segmenter(seed=5, class_names=CLASSES, palette=PALETTE)
    seg.input_scaling = "window 20..60 degC"
    path = save_segmenter_checkpoint(seg, tmp_path / f"best{suffix}")
    reads = []
    real = segmenter_module.read_checkpoint
    monkeypatch.setattr(segmenter_module, "read_checkpoint", lambda p, *a, **k: reads.append(p) or real(p, *a, **k))
    loaded = load_segmenter(path)
    assert len(reads) == 1 and loaded.input_scaling == "window 20..60 degC"
    ckpt = SegmenterCheckpoint.read(path)
    assert len(reads) == 2 and ckpt.found["num_classes"] == NUM_CLASSES and ckpt.layout == "unip"
    again = load_segmenter(ckpt)  # an already-read file: no further read
    built = create_segmenter("unip_vit_tiny", num_classes=NUM_CLASSES, checkpoint=ckpt, **TINY)
    assert len(reads) == 2
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(again(x), loaded(x))
        torch.testing.assert_close(built(x), loaded(x))
    import unip_hub.hub.hf_folders as convert_module

    info_reads = []
    real_info = convert_module.read_checkpoint
    monkeypatch.setattr(convert_module, "read_checkpoint",
                        lambda p, *a, **k: info_reads.append(p) or real_info(p, *a, **k))
    assert main(["info", str(path)]) == 0
    assert "window 20..60 degC" in capsys.readouterr().out
    assert len(info_reads) == 1 and len(reads) == 2  # unip info: one read, shared with the segmenter reading
