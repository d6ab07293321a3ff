"""Segmenter from mmseg checkpoints vs. an independent reference; padding; slide inference; heads; necks."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.segmenters import CLASSES, NUM_CLASSES, PALETTE, TINY, tiny_segmenter, write_mmseg_checkpoint

from unip_hub.checkpoints import CheckpointError
from unip_hub.hub.segmenters import create_segmenter
from unip_hub.inference import InferenceOptions, Predictor, predict, slide_logits, window_boxes
from unip_hub.models.vit import build_vit


# ------------------------------------------------------------------------------------------ reference composition
def _reference_logits(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Research-code forward written independently: core ViT, FPN with functional ops, transformers' UperNetHead."""
    from transformers import UperNetConfig
    from transformers.models.upernet.modeling_upernet import UperNetHead

    vit = build_vit("unip_vit_tiny", init_values=1.0, pos_embed_trainable=True, **TINY).eval()
    bb = {re.sub(r"\.gamma_([12])$", r".ls\1.gamma", k[9:]): v for k, v in sd.items()
          if k.startswith("backbone.") and not k.startswith("backbone.fpn")}
    missing, unexpected = vit.load_state_dict(bb, strict=False)
    assert not unexpected and set(missing) <= {"norm.weight", "norm.bias"}
    with torch.no_grad():
        tokens, (gh, gw) = vit.prepare_tokens(x)
        for blk in vit.blocks:
            tokens = blk(tokens)
        c = tokens.shape[-1]
        m = tokens[:, 1:].transpose(1, 2).reshape(x.shape[0], c, gh, gw)  # un-normed last block, (B, C, H/16, W/16)

        def w(name):
            return sd[f"backbone.{name}"]

        f1 = F.conv_transpose2d(m, w("fpn1.0.weight"), w("fpn1.0.bias"), stride=2)
        f1 = F.batch_norm(f1, w("fpn1.1.running_mean"), w("fpn1.1.running_var"), w("fpn1.1.weight"),
                          w("fpn1.1.bias"), training=False, eps=1e-5)
        f1 = F.conv_transpose2d(F.gelu(f1), w("fpn1.3.weight"), w("fpn1.3.bias"), stride=2)
        f2 = F.conv_transpose2d(m, w("fpn2.0.weight"), w("fpn2.0.bias"), stride=2)
        f4 = F.max_pool2d(m, kernel_size=2, stride=2)

        head = UperNetHead(UperNetConfig(hidden_size=c, num_labels=NUM_CLASSES, pool_scales=[1, 2, 3, 6]), [c] * 4)
        hsd = {k[len("decode_head."):].replace(".bn.", ".batch_norm.").replace("conv_seg", "classifier"): v
               for k, v in sd.items() if k.startswith("decode_head.")}
        head.load_state_dict(hsd, strict=True)
        logits = head.eval()([f1, f2, m, f4])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.slow
@pytest.mark.parametrize("with_norm", [True, False])
def test_mmseg_checkpoint_gives_reference_logits(tmp_path, with_norm):
    src = tiny_segmenter(seed=1)
    path = write_mmseg_checkpoint(src, tmp_path / "iter_14400.pth", with_norm=with_norm)
    sd = torch.load(path, weights_only=True)["state_dict"]
    assert "backbone.blocks.0.gamma_1" in sd and "backbone.fpn1.1.running_var" in sd
    assert sd["backbone.pos_embed"].shape == (1, 1 + 8 * 8, 64)
    seg = create_segmenter("unip_vit_tiny", num_classes=NUM_CLASSES, checkpoint=path, **TINY).eval()
    assert seg.class_names == list(CLASSES) and seg.palette == [tuple(c) for c in PALETTE]
    torch.manual_seed(0)
    for h, w in [(128, 128), (64, 96)]:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            got = seg(x)
        ref = _reference_logits(sd, x)
        assert got.shape == (2, NUM_CLASSES, h, w)
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
        assert ref.abs().max() > 1e-2  # not trivially zero


def test_mmseg_checkpoint_missing_keys_named(tmp_path):
    src = tiny_segmenter()
    path = tmp_path / "broken.pth"
    write_mmseg_checkpoint(src, path)
    obj = torch.load(path, weights_only=True)
    del obj["state_dict"]["decode_head.fpn_bottleneck.conv.weight"], obj["state_dict"]["backbone.blocks.1.gamma_2"]
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as err:
        create_segmenter("unip_vit_tiny", num_classes=NUM_CLASSES, checkpoint=path, **TINY)
    assert "decode_head.fpn_bottleneck.conv.weight" in str(err.value)
    assert "backbone.blocks.1.ls2.gamma" in str(err.value) and "missing" in str(err.value)


def test_wrong_class_count_and_backbone_file_refused(tmp_path, official_tiny):
    path = write_mmseg_checkpoint(tiny_segmenter(), tmp_path / "seg.pth")
    with pytest.raises(CheckpointError, match="5 classes"):
        create_segmenter("unip_vit_tiny", num_classes=21, checkpoint=path, **TINY)
    with pytest.raises(CheckpointError, match="not a segmenter checkpoint"):
        create_segmenter("unip_vit_tiny", num_classes=3, checkpoint=official_tiny[0])
    with pytest.raises(ValueError, match="not both"):
        create_segmenter("unip_vit_tiny", num_classes=5, checkpoint=path, weights=official_tiny[0])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    sd = {k: v for k, v in tiny_segmenter().state_dict().items()}
    torch.save({"state_dict": sd, "meta": {"x": _Evil(marker)}}, path)
    assert not marker.exists()  # saving only records the call
    with pytest.raises(CheckpointError, match="refusing"):
        create_segmenter("unip_vit_tiny", num_classes=NUM_CLASSES, checkpoint=path, **TINY)
    assert not marker.exists()


# ----------------------------------------------------------------------------------------- padding and inference
def test_padding_round_trips_odd_sizes():
    seg = tiny_segmenter()
    x = torch.randn(1, 3, 100, 75)
    with torch.no_grad():
        out = seg(x)
        padded = seg(F.pad(x, (0, 5, 0, 12)))  # 112 x 80: what forward pads to
        logits, aux = seg.forward_train(x)
    assert out.shape == (1, NUM_CLASSES, 100, 75) and torch.isfinite(out).all()
    assert aux.shape == logits.shape == out.shape
    # same network on the same padded tensor; only the final resize differs (to 112x80, then cropped)
    assert torch.allclose(logits, out)
    assert padded.shape[-2:] == (112, 80)
    pred = Predictor(seg).predict(np.random.default_rng(0).integers(0, 255, (37, 51), dtype=np.uint8))
    assert pred.shape == (37, 51) and pred.dtype == torch.int64 and int(pred.max()) < NUM_CLASSES


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (16, 40), (31, 17)])
@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_images_below_the_network_minimum_are_padded_and_cropped_back(size, mode):
    seg = tiny_segmenter()
    assert seg.min_input_size == 32  # LL-FPN's stride-32 level needs two patches
    x = torch.randn(1, 3, *size)
    logits = seg.predict_logits(x, mode=mode, crop_size=24, stride=16)
    assert logits.shape == (1, NUM_CLASSES, *size) and torch.isfinite(logits).all()
    h, w = size
    padded = seg._pad(x)
    assert padded.shape[-2:] == (max(32, -(-h // 16) * 16), max(32, -(-w // 16) * 16))
    assert torch.equal(padded[..., :h, :w], x) and torch.equal(padded, F.pad(x, (0, padded.shape[-1] - w, 0,
                                                                               padded.shape[-2] - h)))
    if mode == "whole":
        with torch.no_grad():
            torch.testing.assert_close(logits, seg(x))
    probe = create_segmenter("unip_vit_tiny", num_classes=3, head="linear", layers=[0, 1], **TINY).eval()
    assert probe.min_input_size == 16 and probe(x).shape == (1, 3, *size)


def test_segmenter_takes_tensors_and_names_the_predictor_for_anything_else(tmp_path):
    seg = tiny_segmenter()
    gray = np.random.default_rng(1).integers(0, 255, (40, 56), dtype=np.uint8)
    for bad in (gray, str(tmp_path / "a.png"), torch.from_numpy(gray), torch.randn(40, 56)):
        with pytest.raises(TypeError, match=r"Predictor\(seg\)\.predict"):
            seg.predict(bad)
    with pytest.raises(TypeError, match="predict_logits"):
        seg.predict_logits(gray)
    # the predictor reads, normalises with the segmenter's mean/std and calls the same model
    x = (torch.from_numpy(gray).float() - seg.mean) / seg.std
    expect = seg.predict(x.expand(3, -1, -1), mode="slide", crop_size=32, stride=21)
    predictor = Predictor(seg)
    for source in (gray, torch.from_numpy(gray)):
        torch.testing.assert_close(predictor.predict(source, mode="slide", crop_size=32, stride=21), expect)
    options = InferenceOptions(mode="slide", crop_size=32, stride=21, batch_windows=2)
    torch.testing.assert_close(predict(seg, gray, mode="slide", crop_size=32, stride=21), expect)
    torch.testing.assert_close(predictor.predict(gray, options), expect)
    # the prepared door takes the normalised batch; the raw door never guesses that a float tensor is normalised
    assert predictor.predict_torch(x.expand(2, 3, -1, -1)).shape == (2, 40, 56)
    torch.testing.assert_close(predictor.predict_torch(predictor.set_image(gray).tensor, options)[0], expect)
    with pytest.raises(TypeError, match="predict_torch"):
        predictor.predict(x.expand(2, 3, -1, -1))
    with pytest.raises(TypeError, match="predict / predict_logits"):
        predictor.predict_torch(gray)
    calls = []
    predictor.forward = lambda t: calls.append(t.shape) or seg(t)  # the one model call a runtime replaces
    predictor.predict(gray, options)
    assert calls == [(2, 3, 32, 32)] * 3  # 2 x 3 windows of 32 x 32, two per call


def test_inference_options_refuse_bad_values():
    for bad in ({"mode": "tiles"}, {"crop_size": 0}, {"stride": -1}, {"batch_windows": 0}, {"scale": (0, 5)}):
        with pytest.raises(ValueError):
            InferenceOptions(**bad)
    with pytest.raises(ValueError, match="mode"):
        tiny_segmenter().predict(torch.randn(3, 32, 32), mode="tiles")


def test_slide_equals_whole_when_crop_covers_image():
    seg = tiny_segmenter()
    x = torch.randn(1, 3, 96, 80)
    with torch.no_grad():
        whole = seg.predict_logits(x, mode="whole")
        slide = seg.predict_logits(x, mode="slide", crop_size=128, stride=85)
    assert window_boxes(96, 80, 128, 85) == [(0, 96, 0, 80)]
    torch.testing.assert_close(slide, whole)


def test_window_boxes_follow_mmseg():
    # 100 x 75 with crop 64 / stride 48: rows at 0 and 36 (clipped back to the border), columns at 0 and 11
    assert window_boxes(100, 75, 64, 48) == [(0, 64, 0, 64), (0, 64, 11, 75), (36, 100, 0, 64), (36, 100, 11, 75)]
    # mmseg default on a 512 x 683 test image: 1 row, 2 columns (683 - 512 + 340) // 341 + 1 = 2
    assert window_boxes(512, 683, 512, 341) == [(0, 512, 0, 512), (0, 512, 171, 683)]


def test_slide_averages_overlaps_and_batches_windows():
    calls = []

    def fn(crops):  # logit = window index, so the average is easy to check
        calls.append(crops.shape[0])
        return crops[:, :1] * 0 + crops[:, 1:2, :1, :1]

    x = torch.zeros(1, 2, 100, 75)
    boxes = window_boxes(100, 75, 64, 48)
    for i, (y1, _, x1, _) in enumerate(boxes):
        x[:, 1, y1, x1] = i  # top-left pixel carries the window index (no two windows share a top-left)
    out = slide_logits(fn, x, 1, crop=64, stride=48, batch_windows=3)
    assert calls == [3, 1]
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 99, 74] == 3
    assert out[0, 0, 50, 40] == pytest.approx((0 + 1 + 2 + 3) / 4)  # covered by all four windows
    assert out[0, 0, 50, 5] == pytest.approx((0 + 2) / 2)  # left column only
    seg = tiny_segmenter()
    img = torch.randn(1, 3, 100, 75)
    with torch.no_grad():
        a = seg.slide_logits(img, 64, 48, batch_windows=1)
        b = seg.slide_logits(img, 64, 48, batch_windows=4)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- heads and necks
def test_module_names_follow_mmseg():
    keys = set(tiny_segmenter().state_dict())
    for k in ("neck.fpn1.0.weight", "neck.fpn1.1.running_var", "neck.fpn1.3.bias", "neck.fpn2.0.weight",
              "decode_head.psp_modules.3.1.conv.weight", "decode_head.psp_modules.0.1.bn.running_mean",
              "decode_head.bottleneck.conv.weight", "decode_head.lateral_convs.2.bn.weight",
              "decode_head.fpn_convs.0.conv.weight", "decode_head.fpn_bottleneck.bn.bias",
              "decode_head.conv_seg.weight", "auxiliary_head.convs.0.conv.weight", "auxiliary_head.conv_seg.bias",
              "backbone.blocks.1.ls2.gamma", "backbone.pos_embed"):
        assert k in keys, k
    assert not any(k.endswith("conv.bias") for k in keys if "conv_seg" not in k)  # convs before BN have no bias


def test_pyramid_strides_and_multi_layer_neck():
    seg = tiny_segmenter()
    feats = seg.features(torch.randn(1, 3, 128, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 24), (16, 12), (8, 6), (4, 3)]
    assert seg.neck.strides == [4, 8, 16, 32] and seg.neck.out_channels == [64] * 4
    multi = create_segmenter("unip_vit_tiny", num_classes=3, neck="multi", layers=[0, 1, 2, 3],
                             **{**TINY, "depth": 4}).eval()
    assert type(multi.neck).__name__ == "MultiLayerFPN" and multi.layers == [0, 1, 2, 3]
    assert multi(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="layers="):
        create_segmenter("unip_vit_tiny", num_classes=3, neck="multi", **TINY)
    with pytest.raises(ValueError, match="head must be"):
        create_segmenter("unip_vit_tiny", num_classes=3, head="segformer", **TINY)


def test_linear_probe_freezes_backbone():
    seg = create_segmenter("unip_vit_tiny", num_classes=4, head="linear", layers=[0, 1], **TINY)
    assert seg.neck is None and seg.auxiliary_head is None
    assert seg.decode_head.conv_seg.in_channels == 128 and not hasattr(seg.decode_head, "bn")
    assert not any(p.requires_grad for p in seg.backbone.parameters())
    seg.train()
    assert seg.training and not seg.backbone.training  # no drop-path in a frozen backbone
    logits, aux = seg.forward_train(torch.randn(2, 3, 64, 48))
    assert aux is None and logits.shape == (2, 4, 64, 48)
    logits.sum().backward()
    assert seg.decode_head.conv_seg.weight.grad is not None


def test_training_step_reaches_every_trainable_parameter():
    seg = tiny_segmenter().train()
    logits, aux = seg.forward_train(torch.randn(2, 3, 64, 64))
    (logits.mean() + 0.4 * aux.mean()).backward()
    no_grad = [n for n, p in seg.named_parameters() if p.requires_grad and p.grad is None
               and not n.startswith("backbone.norm.")]
    assert no_grad == []
    assert seg.backbone.pos_embed.requires_grad


def test_released_backbone_weights_into_segmenter(official_tiny):
    path, sd = official_tiny
    seg = create_segmenter("unip_vit_tiny", num_classes=3, weights=path, img_size=128)
    bb = seg.backbone.state_dict()
    torch.testing.assert_close(bb["blocks.11.attn.qkv.weight"], sd["blocks.11.attn.qkv.weight"])
    torch.testing.assert_close(bb["norm.weight"], sd["norm.weight"])  # kept, unused by the segmenter
    assert bb["pos_embed"].shape == (1, 65, 192) and seg.backbone.num_heads == seg.backbone.last_heads == 3
    assert torch.all(bb["blocks.0.ls1.gamma"] == 1.0)
    assert seg.eval()(torch.randn(1, 3, 48, 64)).shape == (1, 3, 48, 64)


def test_hub_entry_points():
    from unip_hub.hub.segmenters import unip_l_upernet, unip_t_upernet

    seg = unip_t_upernet(num_classes=3, pretrained=False, **TINY)
    assert seg.num_classes == 3 and seg.config["arch"] == "unip_vit_tiny"
    with pytest.raises(ValueError, match="no released weights"):
        unip_l_upernet(num_classes=3, pretrained=True)
