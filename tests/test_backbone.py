"""The UNIP ViT against an independent reference computation, and its feature APIs (registry-driven)."""

from __future__ import annotations

import pytest
import torch
from helpers.reference_vit import reference_logits, reference_tokens

import unip_hub
from unip_hub.models.vit import ARCHS, UnipViT, build_vit

SIZES = [(224, 224), (512, 512), (480, 640)]


@pytest.mark.parametrize("hw", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("last_heads", [None, "distilled"])
def test_released_checkpoint_matches_reference(official_tiny, hw, last_heads):
    path, sd = official_tiny
    model = unip_hub.unip_vit_tiny(weights=path, last_heads=last_heads).eval()
    heads = [3] * 11 + [16 if last_heads == "distilled" else 3]
    torch.manual_seed(1)
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        ours = model.forward_features(x)
        ref = reference_tokens(sd, x, heads)
        assert ours.shape == (1, 1 + hw[0] * hw[1] // 256, 192)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x), ref[:, 0], atol=1e-5, rtol=1e-5)
        logits = model.forward_attention_logits(x)
        torch.testing.assert_close(logits, reference_logits(sd, x, heads, 11), atol=1e-4, rtol=1e-5)
        maps = model.get_attention_maps(x, layers=[0, 11])
        assert [m.shape[1] for m in maps] == [3, heads[-1]]
        torch.testing.assert_close(maps[1], logits.softmax(-1), atol=1e-6, rtol=1e-5)


def test_distilled_last_heads_changes_only_the_split(official_tiny):
    path, _ = official_tiny
    std = unip_hub.unip_vit_tiny(weights=path)
    dist = unip_hub.unip_vit_tiny(weights=path, last_heads="distilled")
    assert std.blocks[-1].attn.num_heads == 3 and dist.blocks[-1].attn.num_heads == 16
    assert dist.distilled_last_heads == 16 and std.distilled_last_heads == 16
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert not torch.allclose(std.forward_features(x), dist.forward_features(x))
        block10 = std.get_intermediate_layers(x, n=[10])[0]
        torch.testing.assert_close(block10, dist.get_intermediate_layers(x, n=[10])[0])
    with pytest.raises(ValueError, match="distilled"):
        unip_hub.unip_vit_tiny(last_heads="distilled")
    assert unip_hub.unip_vit_tiny(last_heads=12).blocks[-1].attn.num_heads == 12


@pytest.mark.parametrize("arch", unip_hub.list_models())
def test_every_architecture_builds_and_runs(arch):
    spec = ARCHS[arch]
    model = build_vit(arch, depth=2, img_size=64)
    x = torch.randn(2, 3, 64, 96)
    out = model(x)
    assert out.shape == (2, spec.embed_dim) and torch.isfinite(out).all()
    out.sum().backward()
    assert model.patch_embed.proj.weight.grad is not None
    maps = model.get_intermediate_layers(x, n=2, reshape=True)
    assert [m.shape for m in maps] == [(2, spec.embed_dim, 4, 6)] * 2


def test_intermediate_layer_apis_agree():
    torch.manual_seed(0)
    model = build_vit("unip_vit_tiny", depth=4).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        last2 = model.get_intermediate_layers(x, n=2, norm=False)
        picked = model.get_intermediate_layers(x, n=[2, 3], norm=False)
        for a, b in zip(last2, picked):
            torch.testing.assert_close(a, b)
        pairs = model.get_intermediate_layers(x, n=[1], return_class_token=True, reshape=True)
        (fmap, cls), = pairs
        assert fmap.shape == (2, 192, 4, 3) and cls.shape == (2, 192)
        final, inter = model.forward_intermediates(x, indices=[1, 3])
        torch.testing.assert_close(final, model.forward_features(x))
        normed = model.get_intermediate_layers(x, n=[1, 3], reshape=True, norm=False)
        for a, b in zip(inter, normed):
            torch.testing.assert_close(a, b)
        nlc = model.forward_intermediates(x, indices=[-1], output_fmt="NLC", intermediates_only=True, norm=True)
        torch.testing.assert_close(nlc[0], model.forward_features(x)[:, 1:])
    with pytest.raises(ValueError, match="out of range"):
        model.get_intermediate_layers(x, n=[4])
    with pytest.raises(ValueError, match="last 5"):
        model.get_intermediate_layers(x, n=5)
    kept = model.prune_intermediate_layers([1])
    assert kept == [1] and model.depth == 2


@pytest.mark.parametrize("shape", [(1, 3, 100, 224), (1, 3, 224, 230), (3, 224, 224), (1, 4, 224, 224)])
def test_bad_input_shapes_raise_clear_errors(shape):
    model = build_vit("unip_vit_tiny", depth=1)
    with pytest.raises(ValueError, match=r"multiple of the patch size|channels|batch"):
        model(torch.randn(*shape))


def test_single_channel_input_adapts_patch_embedding(official_tiny):
    path, _ = official_tiny
    rgb = unip_hub.unip_vit_tiny(weights=path).eval()
    gray = unip_hub.unip_vit_tiny(weights=path, in_chans=1).eval()
    assert gray.patch_embed.proj.weight.shape[1] == 1
    img = torch.randn(2, 1, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(gray(img), rgb(img.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_drop_path_and_layer_scale():
    torch.manual_seed(0)
    model = build_vit("unip_vit_tiny", depth=3, init_values=0.5, drop_path_rate=0.2)
    assert model.blocks[0].ls1.gamma.shape == (192,) and "blocks.2.ls2.gamma" in model.state_dict()
    assert model.blocks[2].drop_path1.drop_prob == pytest.approx(0.2)
    model.eval()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    ref = model(x).sum()
    (g_ref,) = torch.autograd.grad(ref, x)
    model.set_grad_checkpointing(True)
    out = model(x).sum()
    (g_ckpt,) = torch.autograd.grad(out, x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g_ckpt, g_ref)
    model.train()
    torch.manual_seed(1)
    a = model(x.detach())
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x.detach())), "drop-path must be stochastic in training"


def test_large_has_no_released_weights():
    with pytest.raises(ValueError, match="no released weights"):
        unip_hub.unip_vit_large(pretrained=True)


# ------------------------------------------------------------------------------- graph capture and classifier
def _tiny_classifier(**kwargs):
    torch.manual_seed(0)
    return UnipViT(img_size=32, embed_dim=32, depth=2, num_heads=2, num_classes=5, **kwargs)


GRAPH_CASES = [dict(), dict(init_values=1.0, drop_path_rate=0.1, last_heads=4)]


@pytest.mark.parametrize("kwargs", GRAPH_CASES, ids=["plain", "layer_scale_last_heads"])
def test_torchscript_matches_eager_at_any_size(kwargs):
    model = _tiny_classifier(**kwargs).eval()
    scripted = torch.jit.script(model)
    for hw in [(32, 32), (48, 32), (64, 80)]:  # the stored grid and two resized ones
        x = torch.randn(2, 3, *hw)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs", GRAPH_CASES, ids=["plain", "layer_scale_last_heads"])
def test_fx_symbolic_trace_forward_and_backward(kwargs):
    from torch.fx import symbolic_trace

    model = _tiny_classifier(**kwargs).eval()
    with torch.no_grad():  # traced in the state it runs in, the graph is eager's computation: bit-identical
        graph = symbolic_trace(model)
        for hw in [(32, 32), (48, 64)]:  # the graph keeps the input size symbolic
            x = torch.randn(2, 3, *hw)
            assert torch.equal(graph(x), model(x))
    model.train()
    graph = symbolic_trace(model)
    torch.manual_seed(3)
    graph(torch.randn(2, 3, 32, 32)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"


def test_timm_fx_feature_extractor():
    from timm.models import create_feature_extractor

    model = _tiny_classifier().eval()
    extractor = create_feature_extractor(model, return_nodes={"blocks.0": "b0", "norm": "out"})
    x = torch.randn(1, 3, 48, 32)
    with torch.no_grad():
        feats = extractor(x)
        torch.testing.assert_close(feats["out"], model.forward_features(x))
    assert feats["b0"].shape == (1, 1 + 3 * 2, 32)


def test_classifier_contract():
    """timm's: num_classes, get_classifier, reset_classifier, forward_head(pre_logits=...)."""
    model = _tiny_classifier()
    x = torch.randn(2, 3, 32, 32)
    assert model.num_classes == 5 and model.get_classifier().out_features == 5 and model(x).shape == (2, 5)
    tokens = model.forward_features(x)
    assert model.forward_head(tokens, pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(7, "token")
    assert model.num_classes == 7 and model(x).shape == (2, 7)
    model.reset_classifier(0)
    assert model.num_classes == 0 and isinstance(model.get_classifier(), torch.nn.Identity)
    assert model(x).shape == (2, model.num_features)
    with pytest.raises(ValueError, match="class token"):
        model.reset_classifier(3, "avg")
