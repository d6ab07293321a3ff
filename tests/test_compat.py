"""unip_hub.compat: the one wrapper of dependencies' private names -- version checks and the behaviour we rely on."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from unip_hub import compat
from unip_hub.models.vit import UnipViT


def test_installed_versions_are_in_the_tested_ranges():
    assert compat.check_version("timm", compat.TIMM_TESTED)
    pytest.importorskip("segmentation_models_pytorch")
    assert compat.check_version("segmentation_models_pytorch", compat.SMP_TESTED)


@pytest.mark.parametrize("version", ["0.9.16", "1.0.14", "1.1.0", "2.0.0.dev0"])
def test_untested_version_error_names_the_range(monkeypatch, version):
    fake = types.ModuleType("fake_dep")
    fake.__version__ = version
    monkeypatch.setitem(sys.modules, "fake_dep", fake)
    with pytest.raises(ImportError) as e:
        compat.check_version("fake_dep", ("1.0.15", "1.1"))
    msg = str(e.value)
    assert ">=1.0.15,<1.1" in msg and version in msg and "pip install" in msg


@pytest.mark.parametrize("version", ["1.0.15", "1.0.31", "1.0.20+cpu", "1.0.16rc1"])
def test_tested_versions_pass(monkeypatch, version):
    fake = types.ModuleType("fake_dep")
    fake.__version__ = version
    monkeypatch.setitem(sys.modules, "fake_dep", fake)
    assert compat.check_version("fake_dep", ("1.0.15", "1.1")) == version


@pytest.mark.parametrize(("indices", "expected"), [
    (None, list(range(12))),                 # all blocks
    (4, [8, 9, 10, 11]),                     # int = the last n
    ([3, 5, 7, 11], [3, 5, 7, 11]),          # explicit, 0-based
    ([3, -1], [3, 11]),                      # negatives count from the end
])
def test_feature_take_indices_behaviour(indices, expected):
    take, last = compat.feature_take_indices(12, indices)
    assert list(take) == expected and last == max(expected)


def test_feature_take_indices_as_set():
    take, last = compat.feature_take_indices(12, 2, as_set=True)
    assert set(take) == {10, 11} and last == 11


def test_vit_index_errors_come_before_timm():
    """UnipViT validates indices itself (clear ValueError), so timm's bare asserts are never what a user sees."""
    vit = UnipViT(img_size=32, embed_dim=32, depth=3, num_heads=2)
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="out of range for a 3-block model"):
        vit.get_intermediate_layers(x, n=[3])
    with pytest.raises(ValueError, match="last 4 blocks of a 3-block model"):
        vit.get_intermediate_layers(x, n=4)
    assert len(vit.get_intermediate_layers(x, n=[0, -1])) == 2


def test_timm_feature_getter_net_is_the_features_only_wrapper():
    import inspect

    cls = compat.timm_feature_getter_net()
    assert isinstance(cls, type) and issubclass(cls, torch.nn.Module)
    assert cls.__name__ == "FeatureGetterNet" and cls.__module__.startswith("timm.")
    params = inspect.signature(cls.__init__).parameters  # the arguments timm_build passes
    assert {"model", "out_indices", "output_fmt"} <= set(params)


def test_smp_encoder_mixin_is_a_class():
    pytest.importorskip("segmentation_models_pytorch")
    cls = compat.smp_encoder_mixin()
    assert isinstance(cls, type) and cls.__name__ == "EncoderMixin"
    assert hasattr(cls, "out_channels") and hasattr(cls, "set_in_channels")
