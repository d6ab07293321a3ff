"""timm's own model contract for every ``unip_vit_*`` registration and tag, written for UNIP (not copied from timm).

The checks follow timm's ``tests/test_models.py``, as it applies to ViTs (its "non-standard" cfg test): forward
(and with gradient checkpointing), backward with a 42-class head reaching every parameter, the default / pretrained
cfg fields and the classifier API (``num_classes``, ``num_features``, ``head_hidden_size``, ``forward_head``,
``reset_classifier``), released weights loading with ``in_chans=1`` / ``num_classes`` (files supplied offline
through ``UNIP_WEIGHTS_DIR``), ``features_only`` (also ``feature_cls="getter"``), ``forward_intermediates``,
TorchScript, and ``torch.fx`` feature extraction forward / backward / scripted. Driven by timm's registry
(``timm.list_models("unip_vit_*")``); widths, depths and inputs are shrunk to keep each test in seconds, the
released-weight tests use files of the real sizes.
"""

from __future__ import annotations

import argparse
import math
import warnings

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules

import unip_hub  # registers the names

fx = pytest.importorskip("torchvision.models.feature_extraction")

NAMES = timm.list_models("unip_vit_*")
TAGGED = timm.list_models("unip_vit_*", include_tags=True)
PRETRAINED = timm.list_pretrained("unip_vit_*")
SMALL = dict(embed_dim=64, depth=3, num_heads=4)  # every size's head count divides 64; timm wants >= 3 maps


def _create(name: str, **kwargs) -> torch.nn.Module:
    return timm.create_model(name, **{**SMALL, **kwargs})


def _input(model: torch.nn.Module, batch: int, target: int) -> torch.Tensor:
    torch.manual_seed(0)
    size = tuple(min(s, target) for s in model.pretrained_cfg["input_size"])  # timm's _get_input_size
    return torch.randn(batch, *size)


def _fx_model(model: torch.nn.Module, train: bool = False) -> torch.nn.Module:
    """A torchvision FX feature extractor returning the model output, with timm's leaf modules / functions."""
    kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(),
                  param_shapes_constant=True)
    train_nodes, eval_nodes = fx.get_graph_node_names(model, tracer_kwargs=kwargs)
    return fx.create_feature_extractor(model, train_return_nodes=[train_nodes[-1]],
                                       eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=kwargs)


def _script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in favour of torch.export
        return torch.jit.script(module)


def test_registry_covers_every_architecture():
    assert NAMES == sorted(f"{a}_patch16_224" for a in unip_hub.list_models())
    assert len(PRETRAINED) == len(unip_hub.list_weights())


@pytest.mark.parametrize("name", NAMES)
def test_model_forward(name):
    model = _create(name).eval()
    x = _input(model, 1, 384)
    out = model(x)
    assert out.shape[0] == 1 and not torch.isnan(out).any()
    model.set_grad_checkpointing()
    torch.testing.assert_close(model(x), out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_model_backward(name):
    model = _create(name, num_classes=42).train()
    assert model.num_classes == 42
    out = model(_input(model, 2, 128))
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == [] and out.shape[-1] == 42 and not torch.isnan(out).any()


@pytest.mark.parametrize("name", TAGGED)
def test_model_default_cfgs(name):
    model = _create(name).eval()
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    cfg, state = model.pretrained_cfg, model.state_dict()
    x = _input(model, 1, 320)
    feats = model.forward_features(x)
    pre = model.forward_head(feats, pre_logits=True)
    assert feats.shape[-1] == model.num_features and pre.shape[1] == model.head_hidden_size
    model.reset_classifier(0)
    assert model.num_classes == 0
    out = model(x)
    assert out.shape == pre.shape and out.shape[-1] == model.head_hidden_size
    assert _create(name, num_classes=0).eval()(x).shape[-1] == model.num_features
    if cfg.get("num_classes"):
        assert cfg["classifier"] + ".weight" in state
    assert cfg["first_conv"] + ".weight" in state
    assert len(cfg["mean"]) == len(cfg["std"]) == cfg["input_size"][0] == 3


@pytest.fixture(scope="module")
def released_dir(tmp_path_factory):
    """``UNIP_WEIGHTS_DIR`` for the released file names (written on demand by :func:`_release`)."""
    return tmp_path_factory.mktemp("released")


def _release(folder, name: str) -> None:
    """Writes the released file of ``name`` (``arch_patch16_224.tag``) in the research layout, at its real size."""
    from unip_hub.models.vit import build_vit

    arch, tag = name.replace("_patch16_224", "").split(".")
    entry = unip_hub.get_weights_entry(arch, tag)
    if not (folder / entry.filename).is_file():
        vit = build_vit(entry.arch, last_heads=entry.last_heads)
        args = argparse.Namespace(model=entry.arch, last_heads=entry.last_heads, teacher_model=entry.teacher)
        torch.save({"model": vit.state_dict(), "args": args}, folder / entry.filename)


def _slow_unless_tiny(names: list[str]) -> list:
    return [n if "tiny" in n else pytest.param(n, marks=pytest.mark.slow) for n in names]


@pytest.mark.parametrize("name", _slow_unless_tiny(PRETRAINED))
def test_model_load_pretrained(name, released_dir, monkeypatch):
    _release(released_dir, name)
    monkeypatch.setenv("UNIP_WEIGHTS_DIR", str(released_dir))
    m5 = timm.create_model(name, pretrained=True, in_chans=1, num_classes=5)
    m0 = timm.create_model(name, pretrained=True, in_chans=1, num_classes=0)
    assert m5.num_classes == 5 and m0.num_classes == 0 and m5.patch_embed.proj.in_channels == 1
    torch.testing.assert_close(m5.blocks[0].attn.qkv.weight, m0.blocks[0].attn.qkv.weight)


@pytest.mark.parametrize("name", _slow_unless_tiny(PRETRAINED))
def test_model_features_pretrained(name, released_dir, monkeypatch):
    _release(released_dir, name)
    monkeypatch.setenv("UNIP_WEIGHTS_DIR", str(released_dir))
    model = timm.create_model(name, pretrained=True, features_only=True)
    assert model.feature_info.reduction() == [4, 8, 16, 32]


@pytest.mark.parametrize("name", NAMES)
def test_model_forward_torchscript(name):
    with timm.layers.set_scriptable(True):
        model = _create(name).eval()
    scripted = _script(model)
    out = scripted(_input(model, 1, 128))
    assert out.shape[0] == 1 and not torch.isnan(out).any()


def _check_maps(model, outputs, x):
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 3 and len(outputs) == len(channels)
    for c, r, o in zip(channels, reductions, outputs, strict=True):
        assert o.shape[1] == c and o.shape[0] == 1 and not torch.isnan(o).any()
        assert o.shape[2] <= math.ceil(x.shape[2] / r) + 1 and o.shape[3] <= math.ceil(x.shape[3] / r) + 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("feature_cls", [None, "getter"])
def test_model_forward_features(name, feature_cls):
    kwargs = {"feature_cls": feature_cls} if feature_cls else {}
    model = _create(name, features_only=True, **kwargs).eval()
    x = _input(model, 1, 96)
    _check_maps(model, model(x), x)


@pytest.mark.parametrize("name", NAMES)
def test_model_forward_intermediates(name):
    model = _create(name).eval()
    info = timm.models.FeatureInfo(model.feature_info, len(model.feature_info))
    x = _input(model, 1, 96)
    final, maps = model.forward_intermediates(x, output_fmt="NCHW")
    assert len(maps) == len(info.channels()) >= 3  # one per block
    for c, r, o in zip(info.channels(), info.reduction(), maps, strict=True):
        assert o.shape[1] == c and o.shape[2] <= math.ceil(x.shape[2] / r) + 1
    torch.testing.assert_close(final, model.forward_features(x))
    model.set_grad_checkpointing()
    torch.testing.assert_close(model.forward_intermediates(x, output_fmt="NCHW")[0], final, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_model_forward_fx(name):
    model = _create(name).eval()
    with torch.inference_mode():
        x = _input(model, 1, 128)
        out = model(x)
        traced = next(iter(_fx_model(model)(x).values()))
    assert not torch.isnan(out).any()
    assert torch.equal(traced, out)  # timm's check: the graph runs eager's computation, bit for bit


@pytest.mark.parametrize("name", NAMES)
def test_model_fx_equals_eager_in_every_mode(name):
    """Traced in the mode it is run in (train/eval x autograd on/off), the graph equals eager bit for bit, also
    with layer scale (the other residual form of the inference path) and at a resized position table."""
    model = _create(name, depth=2, init_values=0.5)
    x = _input(model, 2, 32)
    for train in (False, True):
        model.train(train)
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                out = model(x)
                traced = next(iter(_fx_model(model)(x).values()))
            assert torch.equal(traced, out), f"train={train}, grad={grad}"
    params = list(model.parameters())  # training with autograd: the graph's gradients are eager's too
    eager_grads = torch.autograd.grad(out.square().sum(), params)
    for a, b in zip(torch.autograd.grad(traced.square().sum(), params), eager_grads, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_model_backward_fx(name):
    model = _create(name, num_classes=42).train()
    traced = _fx_model(model, train=True)
    out = next(iter(traced(_input(model, 2, 128)).values()))
    out.mean().backward()
    missing = [n for n, p in traced.named_parameters() if p.grad is None]
    assert missing == [] and out.shape[-1] == 42


@pytest.mark.parametrize("name", NAMES)
def test_model_forward_fx_torchscript(name):
    with timm.layers.set_scriptable(True):
        model = _create(name).eval()
    scripted = _script(_fx_model(model))
    with torch.inference_mode():
        out = next(iter(scripted(_input(model, 1, 128)).values()))
    assert out.shape[0] == 1 and not torch.isnan(out).any()
