"""torchvision detection adapter: backbone maps, agreement with Segmenter, Faster/Mask R-CNN and RetinaNet steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

detection = pytest.importorskip("torchvision.models.detection")

from unip_hub.data.instances import instances_from_label  # noqa: E402
from unip_hub.detection import IMAGE_MEAN, IMAGE_STD, build_backbone  # noqa: E402  (the documented alias)
from unip_hub.hub.segmenters import create_segmenter  # noqa: E402

TINY = dict(embed_dim=64, depth=2, num_heads=2, img_size=64)


def _scene():
    label = np.zeros((64, 96), np.uint8)
    label[10:20, 5:15] = 5  # person
    label[40:60, 70:90] = 5  # another person
    label[30:35, 30:60] = 6  # car
    label[0:1, 0:3] = 6  # 3 pixels, under min_area: dropped
    image = torch.rand(3, 64, 96)
    return image, instances_from_label(label, (5, 6))


def test_instances_from_label_boxes_and_masks():
    _, t = _scene()
    assert t["labels"].tolist() == [1, 1, 2]
    assert sorted(t["boxes"].tolist()) == [[5, 10, 15, 20], [30, 30, 60, 35], [70, 40, 90, 60]]
    assert t["masks"].shape == (3, 64, 96) and t["masks"].sum(dim=(1, 2)).tolist() == [100, 400, 150]
    empty = instances_from_label(np.zeros((8, 8), np.uint8), (5,))
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, 8, 8)


def test_backbone_without_fpn_matches_segmenter(official_tiny):
    path, _ = official_tiny
    bb = build_backbone("unip_vit_tiny", weights=str(path), fpn=False, img_size=64).eval()
    seg = create_segmenter("unip_vit_tiny", num_classes=3, weights=str(path), img_size=64).eval()
    with torch.no_grad():
        for p in seg.neck.parameters():
            p.normal_()
    bb.body.neck.load_state_dict(seg.neck.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = bb(x)
        assert list(out) == ["0", "1", "2", "3"] and bb.out_channels == 192
        for a, b in zip(out.values(), seg.features(x), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_backbone_with_fpn_levels():
    bb = build_backbone("unip_vit_tiny", out_channels=32, **TINY)
    out = bb(torch.randn(2, 3, 64, 96))
    assert list(out) == ["0", "1", "2", "3", "pool"] and bb.out_channels == 32
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    assert all(v.shape[1] == 32 for v in out.values())
    with pytest.raises(ValueError, match="levels"):
        build_backbone("unip_vit_tiny", levels=(3, 1), **TINY)


def _train_step(model, image, target) -> dict[str, torch.Tensor]:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    losses = model([image], [target])
    total = sum(losses.values())
    total.backward()
    assert model.backbone.body.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    opt.step()
    model.eval()
    with torch.no_grad():
        pred = model([image])[0]
    assert pred["boxes"].shape[1] == 4
    return losses


_FAST = dict(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=200,
             rpn_post_nms_top_n_test=50, box_batch_size_per_image=32)  # small proposal budgets: seconds on a CPU


@pytest.mark.slow
def test_faster_and_mask_rcnn_train_a_step():
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads

    torch.manual_seed(0)
    image, target = _scene()
    kw = dict(num_classes=3, min_size=64, max_size=96, image_mean=IMAGE_MEAN, image_std=IMAGE_STD, **_FAST)
    losses = _train_step(detection.FasterRCNN(build_backbone("unip_vit_tiny", out_channels=32, **TINY), **kw),
                         image, target)
    assert set(losses) >= {"loss_classifier", "loss_box_reg", "loss_objectness"}
    assert all(torch.isfinite(v) for v in losses.values())
    masks = dict(mask_head=MaskRCNNHeads(32, (256,), 1))  # one conv (the predictor expects 256 channels)
    losses = _train_step(detection.MaskRCNN(build_backbone("unip_vit_tiny", out_channels=32, **TINY), **kw, **masks),
                         image, target)
    assert "loss_mask" in losses and torch.isfinite(losses["loss_mask"])


@pytest.mark.slow
def test_retinanet_recipe_trains_a_step():
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    torch.manual_seed(0)
    image, target = _scene()
    bb = build_backbone("unip_vit_tiny", out_channels=32, levels=(1, 2, 3), extra_blocks=LastLevelP6P7(32, 32),
                        **TINY)
    model = detection.RetinaNet(bb, num_classes=3, min_size=64, max_size=96, image_mean=IMAGE_MEAN,
                                image_std=IMAGE_STD, topk_candidates=50, detections_per_img=20)
    losses = _train_step(model, image, target)
    assert set(losses) == {"classification", "bbox_regression"}
