"""timm adapter: registration, pretrained cfgs, loading official files, features_only, data config."""

from __future__ import annotations

import pytest
import timm
import torch

import unip_hub
from unip_hub.hub.segmenters import create_segmenter

TINY = dict(embed_dim=64, depth=2, num_heads=2)


def test_registered_with_infrared_pretrained_cfgs():
    assert set(timm.list_models("unip_vit_*")) == {f"unip_vit_{s}_patch16_224" for s in ("tiny", "small", "base",
                                                                                         "large")}
    tags = set(timm.list_pretrained("unip_vit_small*"))
    assert tags == {"unip_vit_small_patch16_224.mae_large", "unip_vit_small_patch16_224.ibot_large"}
    cfg = timm.models.get_pretrained_cfg("unip_vit_small_patch16_224.ibot_large")
    assert cfg.hf_hub_id == "casiatao/UNIP" and cfg.hf_hub_filename == "unip_vit_small_by_ibot_large.pth"
    assert cfg.mean == (0.3801,) * 3 and cfg.std == (0.1871,) * 3 and cfg.license == "apache-2.0"
    assert not timm.models.is_model_pretrained("unip_vit_large_patch16_224")


def test_model_is_the_package_vit_and_data_config_is_infrared():
    m = timm.create_model("unip_vit_small_patch16_224", **TINY)
    assert isinstance(m, unip_hub.UnipViT)
    data = timm.data.resolve_data_config({}, model=m)
    assert data["mean"] == (0.3801,) * 3 and data["std"] == (0.1871,) * 3 and data["interpolation"] == "bicubic"
    x = torch.randn(2, 3, 48, 64)
    assert m(x).shape == (2, 64)


def test_pretrained_file_overlay_matches_package_builder(official_tiny):
    path, sd = official_tiny
    m = timm.create_model("unip_vit_tiny_patch16_224.mae_large", pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(path))).eval()
    ref = unip_hub.unip_vit_tiny(weights=str(path)).eval()
    torch.testing.assert_close(m.state_dict()["blocks.3.attn.qkv.weight"], sd["blocks.3.attn.qkv.weight"])
    x = torch.randn(1, 3, 64, 96)
    torch.testing.assert_close(m.forward_features(x), ref.forward_features(x), atol=1e-5, rtol=0)
    distilled = timm.create_model("unip_vit_tiny_patch16_224.mae_large", pretrained=True, last_heads="distilled",
                                  pretrained_cfg_overlay=dict(file=str(path)))
    assert distilled.blocks[-1].attn.num_heads == 16 and m.blocks[-1].attn.num_heads == 3


def test_pretrained_in_chans_1_equals_gray_copy(official_tiny):
    path, _ = official_tiny
    kw = dict(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    m1 = timm.create_model("unip_vit_tiny_patch16_224.mae_large", in_chans=1, **kw).eval()
    m3 = timm.create_model("unip_vit_tiny_patch16_224.mae_large", **kw).eval()
    gray = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(m1(gray), m3(gray.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-5)


def test_features_only_llfpn_matches_segmenter(official_tiny):
    path, _ = official_tiny
    kw = dict(img_size=64, init_values=1.0, pos_embed_trainable=True)
    f = timm.create_model("unip_vit_tiny_patch16_224.mae_large", pretrained=True, features_only=True,
                          pretrained_cfg_overlay=dict(file=str(path)), **kw)
    assert f.feature_info.channels() == [192] * 4 and f.feature_info.reduction() == [4, 8, 16, 32]
    assert f.pretrained_cfg["mean"] == (0.3801,) * 3
    seg = create_segmenter("unip_vit_tiny", num_classes=3, weights=str(path), img_size=64, init_values=1.0)
    with torch.no_grad():
        for p in seg.neck.parameters():
            p.normal_()
    f.neck.load_state_dict(seg.neck.state_dict())
    f.eval(), seg.eval()
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(f(x), seg.features(x), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_features_only_out_indices_modes_and_backward():
    f = timm.create_model("unip_vit_base_patch16_224", features_only=True, out_indices=(1, 3), **TINY)
    assert f.feature_info.reduction() == [8, 32]
    out = f(torch.randn(1, 3, 64, 64))
    assert [tuple(t.shape) for t in out] == [(1, 64, 8, 8), (1, 64, 2, 2)]
    sum(o.mean() for o in out).backward()
    assert f.backbone.blocks[0].attn.qkv.weight.grad is not None
    multi = timm.create_model("unip_vit_small_patch16_224", features_only=True, feature_mode="multi", embed_dim=64,
                              num_heads=2)
    assert multi.layers == [3, 5, 7, 11] and len(multi(torch.randn(1, 3, 32, 32))) == 4
    with pytest.raises(ValueError, match="4 levels"):
        timm.create_model("unip_vit_small_patch16_224", features_only=True, out_indices=(4,), **TINY)


def test_features_only_blocks_matches_intermediate_layers():
    torch.manual_seed(0)
    m = timm.create_model("unip_vit_tiny_patch16_224", **TINY).eval()
    g = timm.create_model("unip_vit_tiny_patch16_224", features_only=True, feature_mode="blocks", out_indices=(0, 1),
                          **TINY).eval()
    g.model.load_state_dict(m.state_dict(), strict=False)
    x = torch.randn(1, 3, 32, 48)
    ref = m.get_intermediate_layers(x, n=[0, 1], reshape=True, norm=False)
    assert g.feature_info.reduction() == [16, 16]
    for a, b in zip(g(x), ref, strict=True):
        torch.testing.assert_close(a, b)


def test_pretrained_without_weights_is_a_clear_error(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match="no released weights"):
        timm.create_model("unip_vit_large_patch16_224", pretrained=True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("UNIP_WEIGHTS_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="UNIP_WEIGHTS_DIR"):
        timm.create_model("unip_vit_tiny_patch16_224.ibot_large", pretrained=True, cache_dir=str(tmp_path))
