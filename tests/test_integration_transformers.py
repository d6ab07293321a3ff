"""transformers adapter: Auto registration, UnipModel/UnipBackbone, UperNet training, round-trips, mmseg logits."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers")

from helpers.segmenters import CLASSES, NUM_CLASSES, TINY, tiny_segmenter, write_mmseg_checkpoint
from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoModel,
    AutoModelForSemanticSegmentation,
    UperNetConfig,
    UperNetForSemanticSegmentation,
)

import unip_hub
from unip_hub.integrations.transformers import (
    LEVELS,
    UnipBackbone,
    UnipConfig,
    UnipModel,
    upernet_config,
    upernet_from_checkpoint,
)

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=64)


@pytest.mark.slow
def test_import_unip_hub_registers_when_transformers_is_loaded():
    code = ("import transformers, unip_hub; from transformers import AutoConfig; "
            "print(type(AutoConfig.for_model('unip')).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "UnipConfig"
    lazy = subprocess.run([sys.executable, "-c", "import sys, unip_hub; print('transformers' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert lazy.stdout.strip() == "False"  # import unip_hub never pulls transformers in itself


def test_config_arch_presets_and_stages():
    cfg = UnipConfig(arch="unip_vit_base")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (768, 12, 12)
    assert cfg.stage_names == ["stem", "stage1", "stage2", "stage3", "stage4"] and cfg.out_features == ["stage4"]
    assert UnipConfig(out_indices=[2, 3]).out_features == ["stage2", "stage3"]
    assert isinstance(AutoConfig.for_model("unip"), UnipConfig)
    with pytest.raises(ValueError, match="unknown arch"):
        UnipConfig(arch="vit_huge")


def test_backbone_levels_and_channels():
    bb = AutoBackbone.from_config(UnipConfig(arch="unip_vit_tiny", out_features=list(LEVELS), **SMALL))
    assert isinstance(bb, UnipBackbone) and bb.channels == [64] * 4
    maps = bb(torch.randn(2, 3, 64, 96)).feature_maps
    assert [tuple(m.shape) for m in maps] == [(2, 64, 16, 24), (2, 64, 8, 12), (2, 64, 4, 6), (2, 64, 2, 3)]
    cfg = UnipConfig(neck="multi", neck_layers=[0, 1, 2, 3], out_indices=[1, 4], **{**SMALL, "num_hidden_layers": 4})
    multi = AutoBackbone.from_config(cfg)
    assert multi.channels == [64, 64] and len(multi(torch.randn(1, 3, 32, 32)).feature_maps) == 2


def test_unip_model_from_unip_matches_package_model(official_tiny, tmp_path):
    path, _ = official_tiny
    vit = unip_hub.unip_vit_tiny(weights=str(path)).eval()
    model = UnipModel.from_unip(vit)
    x = torch.randn(1, 3, 64, 64)
    out = model(x, output_hidden_states=True)
    torch.testing.assert_close(out.last_hidden_state, vit.forward_features(x), atol=1e-5, rtol=0)
    assert len(out.hidden_states) == 13 and out.pooler_output.shape == (1, 192)  # embeddings + 12 blocks
    model.save_pretrained(tmp_path / "hf")
    again = AutoModel.from_pretrained(tmp_path / "hf")
    assert isinstance(again, UnipModel) and again.config.arch == "unip_vit_tiny"
    torch.testing.assert_close(again(x).last_hidden_state, out.last_hidden_state, atol=1e-6, rtol=0)


def test_upernet_builds_trains_and_round_trips(tmp_path):
    torch.manual_seed(0)
    backbone = UnipConfig(arch="unip_vit_tiny", out_features=list(LEVELS), **SMALL)  # UperNet takes the 4 levels
    model = UperNetForSemanticSegmentation(UperNetConfig(backbone_config=backbone, num_labels=9, hidden_size=64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 9, (2, 64, 64))
    out = model(pixel_values=x, labels=y)
    assert out.logits.shape == (2, 9, 64, 64) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.backbone.unip.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.backbone.neck.fpn1[0].weight.grad.abs().sum() > 0
    opt.step()
    model.eval()
    model.save_pretrained(tmp_path / "upernet")
    again = AutoModelForSemanticSegmentation.from_pretrained(tmp_path / "upernet").eval()
    assert isinstance(again.backbone, UnipBackbone)
    with torch.no_grad():
        torch.testing.assert_close(again(x).logits, model(x).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", ["mmseg", "ours"])
def test_checkpoint_into_upernet_gives_segmenter_logits(tmp_path, layout):
    seg = tiny_segmenter(seed=1)
    if layout == "mmseg":
        path = write_mmseg_checkpoint(seg, tmp_path / "iter_100.pth", with_norm=False)
    else:
        from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint

        seg.config = {"arch": "unip_vit_tiny", "num_classes": NUM_CLASSES, "head": "upernet", "neck": "last"}
        path = save_segmenter_checkpoint(seg, tmp_path / "seg.safetensors")
    model = upernet_from_checkpoint(path, num_attention_heads=TINY["num_heads"])
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours, aux_ours = seg.forward_train(x)
        out = model(x, output_hidden_states=False)
        torch.testing.assert_close(out.logits, ours, atol=1e-5, rtol=1e-5)
        feats = model.backbone(x).feature_maps
        aux = torch.nn.functional.interpolate(model.auxiliary_head(feats), size=x.shape[2:], mode="bilinear")
        torch.testing.assert_close(aux, aux_ours, atol=1e-5, rtol=1e-5)
    if layout == "mmseg":
        assert model.config.id2label[1] == CLASSES[1]


def test_upernet_config_recipe():
    cfg = upernet_config("unip_vit_small", num_labels=21)
    assert cfg.hidden_size == 384 and cfg.auxiliary_channels == 256 and cfg.auxiliary_loss_weight == 0.4
    assert cfg.backbone_config.layerscale_value == 1.0 and cfg.backbone_config.image_size == 512
    assert cfg.loss_ignore_index == 255 and list(cfg.pool_scales) == [1, 2, 3, 6]
