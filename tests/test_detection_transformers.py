"""transformers' DETR-family detectors take UNIP as ``backbone_config``: forward with labels, loss, one AdamW step."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from unip_hub.integrations.transformers import UnipConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one intra-op thread (tests/conftest.py)
TINY = dict(arch="unip_vit_tiny", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64)
HEAD = dict(d_model=32, encoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_ffn_dim=64, num_queries=10, use_timm_backbone=False, use_pretrained_backbone=False)


def _detr():
    return transformers.DetrConfig(backbone_config=UnipConfig(**TINY, out_features=["stage4"]), decoder_layers=1,
                                   **HEAD)


def _deformable():
    # decoder_layers=1 trips transformers 5's tied-weights check of Deformable DETR's box heads (any backbone)
    return transformers.DeformableDetrConfig(
        backbone_config=UnipConfig(**TINY, out_features=["stage2", "stage3", "stage4"]), decoder_layers=2,
        num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, **HEAD)


def _rt_detr():
    c = TINY["hidden_size"]  # RT-DETR's hybrid encoder must be told the backbone's widths and strides
    return transformers.RTDetrConfig(
        backbone_config=UnipConfig(**TINY, out_features=["stage2", "stage3", "stage4"]), decoder_layers=1,
        encoder_hidden_dim=32, encoder_in_channels=[c] * 3, feat_strides=[8, 16, 32], num_feature_levels=3,
        decoder_in_channels=[32] * 3, decoder_n_points=2, num_denoising=4, **HEAD)


MODELS = {"DetrForObjectDetection": _detr, "DeformableDetrForObjectDetection": _deformable,
          "RTDetrForObjectDetection": _rt_detr}




@pytest.mark.parametrize("name", sorted(MODELS))
def test_detr_family_trains_a_step_on_unip(name):
    torch.manual_seed(0)
    model = getattr(transformers, name)(MODELS[name]())
    backbone = model.model.backbone.model
    assert type(backbone).__name__ == "UnipBackbone"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.3, 0.2]])  # normalised (cx, cy, w, h)
    labels = [{"class_labels": torch.tensor([0, 1]), "boxes": boxes},
              {"class_labels": torch.tensor([1]), "boxes": boxes[1:]}]
    model.train()
    out = model(pixel_values=torch.rand(2, 3, 64, 96), labels=labels)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.loss_dict
    out.loss.backward()
    qkv = backbone.unip.blocks[0].attn.qkv.weight
    assert qkv.grad is not None and qkv.grad.abs().sum() > 0
    before = qkv.detach().clone()
    opt.step()
    assert not torch.equal(before, qkv.detach())
    model.eval()
    with torch.no_grad():
        pred = model(pixel_values=torch.rand(1, 3, 64, 96))
    assert pred.logits.shape[:2] == (1, 10) and pred.pred_boxes.shape == (1, 10, 4)


def test_saved_detr_folder_reloads_with_the_unip_backbone(tmp_path):
    torch.manual_seed(0)
    model = transformers.DetrForObjectDetection(_detr()).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(pixel_values=x).logits
    model.save_pretrained(tmp_path / "detr")
    again = transformers.AutoModelForObjectDetection.from_pretrained(tmp_path / "detr").eval()
    assert type(again.model.backbone.model).__name__ == "UnipBackbone"
    with torch.no_grad():
        torch.testing.assert_close(again(pixel_values=x).logits, ref)
