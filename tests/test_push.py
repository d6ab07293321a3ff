"""Hub polish: `unip push` (Hub calls mocked, no network), generated model cards, revision pinning."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from unip_hub.cli import main
from unip_hub.hub.hf_folders import convert_to_hf_folder as convert_checkpoint
from unip_hub.hub.registry import get_weights_entry


class FakeApi:
    """Stands in for ``huggingface_hub.HfApi``: records the calls, uploads nothing."""

    calls: list = []  # noqa: RUF012

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=False, exist_ok=False):
        FakeApi.calls.append(("create_repo", repo_id, private))
        return type("Url", (), {"repo_id": repo_id})()

    def create_branch(self, repo_id, branch, exist_ok=False):
        FakeApi.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, repo_id, folder_path, revision=None, allow_patterns=None, commit_message=None):
        files = sorted(p.name for p in Path(folder_path).iterdir() if any(p.match(a) for a in allow_patterns))
        readme = (Path(folder_path) / "README.md").read_text()
        FakeApi.calls.append(("upload_folder", repo_id, revision, files, readme, commit_message))
        return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/0123"})()


@pytest.fixture
def fake_hub(monkeypatch):
    FakeApi.calls = []
    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    return FakeApi


@pytest.fixture
def converted(official_tiny, tmp_path) -> Path:
    path, _ = official_tiny
    return convert_checkpoint(path, tmp_path / "unip_vit_tiny.mae_large")


def test_push_uploads_the_converted_files(converted, fake_hub, capsys):
    assert main(["push", str(converted), "me/unip-t", "--private", "--revision", "v1"]) == 0
    assert ("create_repo", "me/unip-t", True) in fake_hub.calls
    assert ("create_branch", "me/unip-t", "v1") in fake_hub.calls
    (upload,) = [c for c in fake_hub.calls if c[0] == "upload_folder"]
    _, repo, revision, files, readme, message = upload
    assert (repo, revision, files) == ("me/unip-t", "v1", ["README.md", "config.json", "model.safetensors"])
    assert "MAE ViT-L/16 teacher's layer 18 of 24" in readme and "Untrained last block" in readme
    assert "unip_vit_tiny.mae_large" in message
    assert "https://huggingface.co/me/unip-t/commit/0123" in capsys.readouterr().out


def test_push_regenerates_a_missing_card(converted, fake_hub):
    (converted / "README.md").unlink()
    assert main(["push", str(converted), "me/unip-t"]) == 0
    readme = (converted / "README.md").read_text()
    assert "layer 18 of 24" in readme and "license: apache-2.0" in readme
    assert not [c for c in fake_hub.calls if c[0] == "create_branch"]


def test_push_refuses_broken_folders(converted, fake_hub, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["push", str(empty), "me/x"]) == 2
    assert "lacks model.safetensors, config.json" in capsys.readouterr().err
    cfg = json.loads((converted / "config.json").read_text())
    (converted / "config.json").write_text(json.dumps({**cfg, "depth": 6}))  # weights no longer fit
    assert main(["push", str(converted), "me/x"]) == 2
    assert "unexpected keys" in capsys.readouterr().err
    assert fake_hub.calls == []


def test_registry_revision_is_pinned(monkeypatch, tmp_path):
    from unip_hub.hub import resolve
    from unip_hub.integrations.timm import _cfg

    entry = dataclasses.replace(get_weights_entry("unip_vit_small", "mae_large"), revision="0123abcd")
    seen = {}

    def fake_download(repo, filename, revision=None, cache_dir=None, force_download=False):
        seen.update(repo=repo, filename=filename, revision=revision)
        path = tmp_path / filename
        torch.save({"model": {}}, path)
        return str(path)

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    monkeypatch.delenv("UNIP_WEIGHTS_DIR", raising=False)
    resolve.download_entry(entry, cache_dir=tmp_path / "cache")
    assert seen == {"repo": "casiatao/UNIP", "filename": "unip_vit_small_by_mae_large.pth", "revision": "0123abcd"}
    assert _cfg(entry)["hf_hub_id"] == "casiatao/UNIP@0123abcd" and entry.url.endswith("/resolve/0123abcd/" +
                                                                                      entry.filename)


@pytest.mark.slow
def test_model_card_snippets_run(converted, official_tiny, monkeypatch):
    """The card's usage block, executed as written (weights found through $UNIP_WEIGHTS_DIR)."""
    path, _ = official_tiny
    monkeypatch.setenv("UNIP_WEIGHTS_DIR", str(path.parent))
    readme = (converted / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    for integration in ("timm.create_model", "UperNetForSemanticSegmentation", "smp.UPerNet", "FasterRCNN",
                        "create_segmenter"):
        assert integration in code
    scope = {"x": torch.randn(1, 3, 64, 64)}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["feats"]) == 4 and scope["m"].feature_info.reduction() == [4, 8, 16, 32]
    assert type(scope["net"].encoder).__name__ == "UnipEncoder" and scope["det"].backbone.out_channels == 256
