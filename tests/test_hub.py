"""Hugging Face layout (convert -> from_pretrained), torch.hub on the checkout, and the core CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.hub import hub_entry_points

import unip_hub
from unip_hub.cli import main
from unip_hub.models.vit import UnipViT

ROOT = Path(__file__).resolve().parents[1]


def test_convert_then_from_pretrained_is_identical(tmp_path, official_tiny, capsys):
    path, _ = official_tiny
    out = tmp_path / "unip-t"
    assert main(["convert", str(path), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"
    config = json.loads((out / "config.json").read_text())
    assert config["embed_dim"] == 192 and config["distilled_last_heads"] == 16 and config["last_heads"] is None
    assert config["pretrained_cfg"]["teacher_layer"] == 18
    card = (out / "README.md").read_text()
    for needle in ("MAE ViT-L/16", "layer 18", "0.3801", "apache-2.0", "Untrained last block", "60.3", "timm"):
        assert needle in card
    assert (out / "model.safetensors").stat().st_size < path.stat().st_size  # no optimizer state
    x = torch.randn(2, 3, 224, 224)
    ref = unip_hub.unip_vit_tiny(weights=path).eval()
    for loaded in (UnipViT.from_pretrained(out), unip_hub.unip_vit_tiny(weights=out)):
        own, want = loaded.state_dict(), ref.state_dict()
        assert own.keys() == want.keys() and all(torch.equal(own[k], want[k]) for k in own)  # bit-identical weights
        with torch.no_grad():  # outputs equal up to the CPU kernels' rounding
            torch.testing.assert_close(loaded(x), ref(x), rtol=0, atol=1e-5)
    distilled = UnipViT.from_pretrained(out, last_heads="distilled")
    assert distilled.blocks[-1].attn.num_heads == 16
    with torch.no_grad():
        ref16 = unip_hub.unip_vit_tiny(weights=path, last_heads="distilled").eval()
        torch.testing.assert_close(distilled(x), ref16(x), rtol=0, atol=1e-5)
    assert main(["convert", str(path), str(out)]) == 2  # refuses to overwrite
    assert "not empty" in capsys.readouterr().err


def test_from_pretrained_is_strict(tmp_path):
    model = UnipViT(embed_dim=64, depth=2, num_heads=2, img_size=32)
    model.save_pretrained(tmp_path / "m")
    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "m" / "model.safetensors"))
    sd.pop("norm.weight")
    save_file(sd, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(ValueError, match=r"norm\.weight"):
        UnipViT.from_pretrained(tmp_path / "m")


def test_save_pretrained_roundtrip_custom_config(tmp_path):
    model = UnipViT(embed_dim=64, depth=2, num_heads=2, img_size=(32, 48), in_chans=1, init_values=0.1).eval()
    model.save_pretrained(tmp_path / "m")
    again = UnipViT.from_pretrained(tmp_path / "m")
    x = torch.randn(1, 1, 32, 48)
    assert again.pos_grid == (2, 3) and again.in_chans == 1
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=1e-5)


def test_torch_hub_local(official_tiny):
    model = torch.hub.load(str(ROOT), "unip_t", source="local", pretrained=False)
    assert isinstance(model, UnipViT) and model.embed_dim == 192
    path, sd = official_tiny
    loaded = torch.hub.load(str(ROOT), "unip_t", source="local", weights=str(path))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in sd.items())
    long = torch.hub.load(str(ROOT), "unip_vit_small", source="local")
    assert long.embed_dim == 384
    assert torch.hub.load(str(ROOT), "unip_b", source="local", pretrained=False).embed_dim == 768
    with pytest.raises(ValueError, match="no released weights"):
        torch.hub.load(str(ROOT), "unip_l", source="local")


def test_cli_list_info_hash(capsys, official_tiny):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "unip_vit_small.ibot_large" in out and "(no released weights)" in out
    assert main(["info", "unip_vit_base.mae_large"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["filename"] == "unip_vit_base_by_mae_large.pth" and info["url"].startswith("https://huggingface.co/")
    assert main(["info", "unip_vit_large"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == []
    assert main(["hash", str(official_tiny[0])]) == 0
    assert len(capsys.readouterr().out.split()[0]) == 64
    assert main(["info", "nonsense"]) == 2


def test_one_size_entry_gives_every_name():
    """Each VIT_SIZES entry gives its builder, torch.hub names, segmenter, timm name and exports."""
    from unip_hub.constants import VIT_SIZES
    from unip_hub.hub import entrypoints

    listed = set(hub_entry_points(ROOT))
    for arch, size in VIT_SIZES.items():
        letter = size.letter.lower()
        names = {arch, f"unip_{letter}", f"unip_{letter}_upernet"}
        assert names <= listed and names <= set(entrypoints.__all__)
        assert arch in unip_hub.__all__ and getattr(unip_hub, arch).__name__ == arch
        assert f"UNIP ViT-{size.letter}/16 ({size.embed_dim} wide" in getattr(unip_hub, arch).__doc__
        model = getattr(unip_hub, arch)(depth=1, img_size=32)
        assert (model.embed_dim, model.num_heads) == (size.embed_dim, size.num_heads)
    assert len(listed) == 3 * len(VIT_SIZES) + len(entrypoints.detectors.HUB_ENTRY_POINTS)
