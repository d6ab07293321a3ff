"""``import unip_hub`` is cheap and lazy, and UNIP registers with timm / transformers / SMP in any import order.

Import order only shows in a fresh interpreter, so these tests run small programs in subprocesses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

import unip_hub

HEAVY = ("torch", "timm", "huggingface_hub", "PIL", "torchvision", "transformers", "segmentation_models_pytorch",
         "numpy", "safetensors")


def _run(code: str) -> dict:
    """Runs ``code`` (which prints one JSON line last) in a fresh interpreter, warnings as errors."""
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_unip_hub_imports_no_heavy_library_and_builds_nothing():
    got = _run(f"import json, sys, unip_hub; print(json.dumps({{'unip': sorted(m for m in sys.modules "
               f"if m.startswith('unip_hub')), 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))")
    assert got["heavy"] == []
    assert got["unip"] == ["unip_hub", "unip_hub.constants", "unip_hub.integrations", "unip_hub.utils",
                           "unip_hub.utils.lazy"]  # constants: VIT_SIZES names the builders


def test_public_names_resolve_lazily_to_their_definitions():
    from unip_hub.hub import backbones, registry, resolve, segmenters
    from unip_hub.models import vit

    home = {"UnipViT": vit, "Weights": registry, "WeightsNotFoundError": resolve, "create_backbone": backbones,
            "create_segmenter": segmenters, "load_segmenter": segmenters, "get_weights_entry": registry,
            "list_models": registry, "list_weights": registry}
    home.update({f"unip_vit_{s}": backbones for s in ("tiny", "small", "base", "large")})
    assert set(unip_hub.__all__) == {*home, "__version__"}
    for name, module in home.items():
        assert getattr(unip_hub, name) is getattr(module, name)
    assert set(unip_hub.__all__) <= set(dir(unip_hub))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        unip_hub.nope  # noqa: B018


def test_detection_package_reexports_the_integration_module():
    pytest.importorskip("torchvision")
    import unip_hub.detection as package
    from unip_hub.integrations import torchvision as detection

    assert unip_hub.detection is package
    from unip_hub.data.instances import instances_from_label as moved
    from unip_hub.detection import IMAGE_MEAN, UnipDetectionBackbone, build_backbone, instances_from_label

    assert build_backbone is detection.build_backbone and instances_from_label is moved
    assert IMAGE_MEAN is detection.IMAGE_MEAN and UnipDetectionBackbone is detection.UnipDetectionBackbone


def test_readme_detection_snippet_after_plain_import():
    pytest.importorskip("torchvision")
    got = _run("import json, unip_hub; bb = unip_hub.detection.build_backbone('unip_vit_tiny', out_channels=16, "
               "embed_dim=32, depth=1, num_heads=2); print(json.dumps({'c': bb.out_channels}))")
    assert got == {"c": 16}


_TIMM = ("import json, timm; print(json.dumps({'names': timm.list_models('unip*'), "
         "'tags': timm.list_pretrained('unip_vit_small*'), "
         "'built': type(timm.create_model('unip_vit_tiny_patch16_224', depth=1)).__name__}))")


@pytest.mark.parametrize("before", ["import unip_hub", "import unip_hub.models",
                                    "from unip_hub.hub import create_backbone", "import timm, unip_hub"])
def test_timm_names_in_any_import_order(before):
    got = _run(f"{before}\n{_TIMM}")
    assert got["names"] == [f"unip_vit_{s}_patch16_224" for s in ("base", "large", "small", "tiny")]
    assert got["tags"] == ["unip_vit_small_patch16_224.ibot_large", "unip_vit_small_patch16_224.mae_large"]
    assert got["built"] == "UnipViT"


def test_failed_registration_warns_and_never_breaks_the_library_import(monkeypatch):
    from unip_hub import integrations

    monkeypatch.setitem(integrations.ADAPTERS, "json", "unip_hub.integrations.no_such_adapter")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        integrations._register("json")
    assert len(seen) == 1 and "unip_hub.integrations.no_such_adapter" in str(seen[0].message)


@pytest.mark.slow
@pytest.mark.parametrize("order", ["unip_first", "library_first"])
def test_transformers_and_smp_registered_in_any_order(order):
    pytest.importorskip("transformers")
    pytest.importorskip("segmentation_models_pytorch")
    libs = "import transformers, segmentation_models_pytorch as smp"
    first, second = ("import unip_hub", libs) if order == "unip_first" else (libs, "import unip_hub")
    got = _run(f"{first}\n{second}\nimport json, sys\nfrom transformers import AutoBackbone, AutoConfig\n"
               "cfg = AutoConfig.for_model('unip', hidden_size=32, num_hidden_layers=1, num_attention_heads=2)\n"
               "net = smp.UPerNet(encoder_name='unip_vit_tiny', encoder_weights=None, classes=2, decoder_channels=8)\n"
               "print(json.dumps({'cfg': type(cfg).__name__, 'bb': type(AutoBackbone.from_config(cfg)).__name__, "
               "'enc': type(net.encoder).__name__}))")
    assert got == {"cfg": "UnipConfig", "bb": "UnipBackbone", "enc": "UnipEncoder"}


@pytest.mark.slow
def test_saved_upernet_folder_loads_in_a_fresh_process_after_import_unip_hub(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import UperNetForSemanticSegmentation

    from unip_hub.integrations.transformers import upernet_config

    torch.manual_seed(0)
    cfg = upernet_config("unip_vit_tiny", num_labels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         image_size=64)
    model = UperNetForSemanticSegmentation(cfg).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).logits
    model.save_pretrained(tmp_path / "upernet")
    torch.save({"x": x, "ref": ref}, tmp_path / "io.pt")
    got = _run(f"import json, torch, unip_hub\nfrom transformers import AutoModelForSemanticSegmentation\n"
               f"m = AutoModelForSemanticSegmentation.from_pretrained({str(tmp_path / 'upernet')!r}).eval()\n"
               f"io = torch.load({str(tmp_path / 'io.pt')!r})\n"
               "with torch.no_grad():\n    d = (m(io['x']).logits - io['ref']).abs().max().item()\n"
               "print(json.dumps({'diff': d, 'bb': type(m.backbone).__name__}))")
    assert got["bb"] == "UnipBackbone" and got["diff"] < 1e-5
