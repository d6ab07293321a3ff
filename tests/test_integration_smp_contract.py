"""segmentation-models-pytorch's own encoder contract for the UNIP encoders, written for UNIP (not copied from SMP).

The checks follow SMP's encoder test base (``tests/encoders/base.py``): six feature maps at strides 1-32 that
backpropagate, 1 / 3 / 4 input channels, depths 3-5 (strides, ``output_stride``, ``out_channels``), invalid depths,
dilated output strides 8 / 16, ``torch.compile(fullgraph=True, dynamic=True)``, strict ``torch.export`` and
TorchScript (each per the encoder's ``_is_torch_*`` flags). The encoders are the names ``import unip_hub`` registers.
"""

from __future__ import annotations

import warnings

import pytest
import torch

smp = pytest.importorskip("segmentation_models_pytorch")

import unip_hub  # noqa: E402,F401  (registers the encoders; SMP is already imported)

NAMES = ["unip_vit_tiny", "unip_vit_small.mae_large"]
"""A random backbone and a released tag (its file is not read here: ``encoder_weights``-free construction)."""
STRIDES = [1, 2, 4, 8, 16, 32]


def _encoder(name: str = "unip_vit_tiny", **kwargs):
    if name.endswith(".mae_large"):  # the tag loads its released file; build the same architecture without it
        name = name.split(".")[0]
    return smp.encoders.get_encoder(name, encoder_weights=None, **kwargs)


def _sample(channels: int = 3) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(1, channels, 64, 64)


def _strides(x: torch.Tensor, features: list[torch.Tensor]) -> list[int]:
    return [x.shape[2] // f.shape[2] for f in features]


def test_registered_after_import_unip_hub():
    assert set(NAMES) <= set(smp.encoders.get_encoder_names())


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(name):
    encoder = _encoder(name, in_channels=3)
    features = encoder(_sample())
    assert len(features) == 6
    features[-1].mean().backward()
    assert encoder.backbone.blocks[0].attn.qkv.weight.grad is not None


@pytest.mark.parametrize("in_channels", [1, 3, 4])
def test_in_channels(in_channels):
    encoder = _encoder(in_channels=in_channels).eval()
    with torch.no_grad():
        features = encoder(_sample(in_channels))
    assert features[0].shape[1] == in_channels == encoder.out_channels[0]


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_depth(depth):
    encoder = _encoder(depth=depth).eval()
    x = _sample()
    with torch.no_grad():
        features = encoder(x)
    assert len(features) == depth + 1 == len(encoder.out_channels)
    assert _strides(x, features) == STRIDES[: depth + 1]
    assert encoder.output_stride == STRIDES[depth]


@pytest.mark.parametrize("depth", [0, 6])
def test_invalid_depth(depth):
    with pytest.raises(ValueError):
        _encoder(depth=depth)


@pytest.mark.parametrize("stride", [8, 16])
def test_dilated(stride):
    encoder = _encoder(output_stride=stride).eval()
    x = _sample()
    with torch.inference_mode():
        strides = _strides(x, encoder(x))
    assert strides == [min(stride, s) for s in STRIDES] and encoder.output_stride == stride


def test_compile():
    encoder = _encoder().eval()
    assert encoder._is_torch_compilable
    torch.compiler.reset()
    compiled = torch.compile(encoder, fullgraph=True, dynamic=True, backend="eager")
    x = _sample()
    with torch.inference_mode():
        for a, b in zip(encoder(x), compiled(x), strict=True):
            torch.testing.assert_close(a, b)


def test_torch_export():
    encoder = _encoder().eval()
    assert encoder._is_torch_exportable
    x = _sample()
    exported = torch.export.export(encoder, args=(x,), strict=True)
    with torch.inference_mode():
        for a, b in zip(encoder(x), exported.module()(x), strict=True):
            torch.testing.assert_close(a, b)


def test_torch_script():
    encoder = _encoder().eval()
    x = _sample()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in favour of torch.export
        if not encoder._is_torch_scriptable:
            with pytest.raises(RuntimeError):
                torch.jit.script(encoder)
            return
        scripted = torch.jit.script(encoder)
    with torch.inference_mode():
        for a, b in zip(encoder(x), scripted(x), strict=True):
            torch.testing.assert_close(a, b)
