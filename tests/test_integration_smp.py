"""segmentation-models-pytorch adapter: registered encoders, every decoder, weights, agreement with Segmenter."""

from __future__ import annotations

import pytest
import torch

smp = pytest.importorskip("segmentation_models_pytorch")

from unip_hub.hub.segmenters import create_segmenter  # noqa: E402
from unip_hub.integrations.smp import UnipEncoder, load_encoder_weights, register_encoder  # noqa: E402

TINY = register_encoder("unip_test_tiny", "unip_vit_tiny", embed_dim=64, depth=2, num_heads=2, img_size=64)
_UNET = dict(decoder_channels=(32, 16, 16, 8, 8))
DECODERS = {  # narrow decoders keep the tests fast
    "UPerNet": dict(decoder_channels=32), "FPN": dict(decoder_pyramid_channels=32, decoder_segmentation_channels=32),
    "Unet": _UNET, "UnetPlusPlus": _UNET, "MAnet": _UNET, "Linknet": {}, "PSPNet": dict(decoder_channels=32),
    "DeepLabV3": dict(decoder_channels=32), "DeepLabV3Plus": dict(decoder_channels=32),
    "PAN": dict(decoder_channels=32), "Segformer": dict(decoder_segmentation_channels=32),
}


def test_default_encoders_registered():
    names = smp.encoders.get_encoder_names()
    for name in ("unip_vit_tiny", "unip_vit_small", "unip_vit_base", "unip_vit_large", "unip_vit_small.mae_large",
                 "unip_vit_base.ibot_large"):
        assert name in names
    assert smp.encoders.encoders["unip_vit_small.ibot_large"]["params"]["weights"] == "ibot_large"


def test_encoder_stages():
    enc = smp.encoders.get_encoder(TINY, in_channels=3, depth=5)
    assert isinstance(enc, UnipEncoder) and enc.out_channels == [3, 0, 64, 64, 64, 64] and enc.output_stride == 32
    x = torch.randn(2, 3, 64, 96)
    feats = enc(x)
    assert [tuple(f.shape) for f in feats] == [(2, 3, 64, 96), (2, 0, 32, 48), (2, 64, 16, 24), (2, 64, 8, 12),
                                               (2, 64, 4, 6), (2, 64, 2, 3)]
    assert feats[0] is x
    dil = smp.encoders.get_encoder(TINY, depth=5, output_stride=8)
    assert [tuple(f.shape[-2:]) for f in dil(x)[2:]] == [(16, 24), (8, 12), (8, 12), (8, 12)]
    with pytest.raises(ValueError, match="output_stride"):
        smp.encoders.get_encoder(TINY, output_stride=4)
    with pytest.raises(ValueError, match="encoder_depth=6"):
        smp.encoders.get_encoder(TINY, depth=6)


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_decoder_builds_runs_and_backprops(decoder):
    torch.manual_seed(0)
    model = getattr(smp, decoder)(encoder_name=TINY, encoder_weights=None, classes=5, **DECODERS[decoder])
    size = 128 if decoder == "PAN" else 64  # PAN's global pooling branch needs a 4x4 stride-32 map
    y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 5, size, size) and torch.isfinite(y).all()
    y.mean().backward()
    assert model.encoder.backbone.blocks[0].attn.qkv.weight.grad is not None


def test_dpt_refuses_clearly():
    with pytest.raises(ValueError, match="Timm encoders"):
        smp.DPT(encoder_name=TINY, encoder_weights=None, classes=5)


@pytest.mark.parametrize("decoder", ["UPerNet", "FPN"])
def test_train_step_and_hub_round_trip(decoder, tmp_path):
    torch.manual_seed(0)
    model = getattr(smp, decoder)(encoder_name=TINY, encoder_weights=None, classes=9, in_channels=1,
                                  **DECODERS[decoder])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(2, 1, 64, 64), torch.randint(0, 9, (2, 64, 64))
    before = model.encoder.neck.fpn1[0].weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.encoder.neck.fpn1[0].weight)
    model.eval()
    model.save_pretrained(tmp_path / decoder)
    again = smp.from_pretrained(tmp_path / decoder).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


def test_encoder_matches_segmenter_features(official_tiny):
    path, _ = official_tiny
    register_encoder("unip_test_file", "unip_vit_tiny", weights=str(path), img_size=64)
    model = smp.UPerNet(encoder_name="unip_test_file", encoder_weights=None, classes=3)
    seg = create_segmenter("unip_vit_tiny", num_classes=3, weights=str(path), img_size=64)
    with torch.no_grad():
        for p in seg.neck.parameters():
            p.normal_()
    model.encoder.neck.load_state_dict(seg.neck.state_dict())
    model.eval(), seg.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.encoder(x)[2:], seg.features(x), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_released_tag_name_and_gray_input(official_tiny, monkeypatch):
    path, sd = official_tiny
    monkeypatch.setenv("UNIP_WEIGHTS_DIR", str(path.parent))
    gray = smp.FPN(encoder_name="unip_vit_tiny.mae_large", encoder_weights=None, classes=3, in_channels=1).encoder
    rgb = smp.encoders.get_encoder("unip_vit_tiny", depth=5)
    load_encoder_weights(rgb, str(path))
    torch.testing.assert_close(rgb.backbone.blocks[5].mlp.fc1.weight, sd["blocks.5.mlp.fc1.weight"])
    gray.eval(), rgb.eval()
    gray.neck.load_state_dict(rgb.neck.state_dict())
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gray(x)[4], rgb(x.expand(-1, 3, -1, -1))[4], atol=1e-5, rtol=1e-5)
