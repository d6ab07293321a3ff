"""Every way of supplying weights, offline behaviour, hashing and the safety of checkpoint reading."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path

import huggingface_hub
import pytest
import torch
from helpers.checkpoints import make_official_checkpoint
from huggingface_hub import constants as hf_constants
from safetensors.torch import save_file

import unip_hub
from unip_hub.checkpoints import CheckpointError, read_checkpoint, sha256sum
from unip_hub.hub import registry, resolve
from unip_hub.hub.resolve import WeightsNotFoundError

REPO, FILE = "casiatao/UNIP", "unip_vit_tiny_by_mae_large.pth"


def _same_weights(model, sd):
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in sd.items())


def _fill_hf_cache(cache: Path, src: Path) -> Path:
    """Lays ``src`` out as huggingface_hub stores a downloaded file (blob + snapshot link + ref)."""
    repo = cache / "models--casiatao--UNIP"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    blob = repo / "blobs" / "deadbeef"
    blob.parent.mkdir()
    blob.write_bytes(src.read_bytes())
    snap = repo / "snapshots" / commit / FILE
    snap.parent.mkdir(parents=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    return snap


@pytest.fixture()
def hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv(resolve.ENV_WEIGHTS_DIR, raising=False)
    return cache


@pytest.fixture()
def offline(monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


@pytest.fixture()
def with_sha(monkeypatch):
    """Records a sha256 for unip_vit_tiny.mae_large in the registry for one test."""

    def record(digest: str) -> None:
        entries = tuple(dataclasses.replace(e, sha256=digest) if e.name == "unip_vit_tiny.mae_large" else e
                        for e in registry._entries())
        monkeypatch.setattr(registry, "_entries", lambda: entries)

    return record


def test_explicit_path_official_pth(official_tiny):
    path, sd = official_tiny
    assert _same_weights(unip_hub.unip_vit_tiny(weights=path), sd)
    assert _same_weights(unip_hub.unip_vit_tiny(weights=str(path)), sd)


@pytest.mark.parametrize("layout", ["plain", "module", "mmseg", "safetensors", "hf_folder"])
def test_other_layouts(tmp_path, official_tiny, layout):
    _, sd = official_tiny
    if layout == "plain":
        path = tmp_path / "plain.pth"
        torch.save(sd, path)
    elif layout == "module":
        path = tmp_path / "ddp.pth"
        torch.save({"model": {"module." + k: v for k, v in sd.items()}}, path)
    elif layout == "mmseg":
        path = tmp_path / "iter_100.pth"
        state = {"backbone." + k.replace(".ls1.gamma", ".gamma_1"): v for k, v in sd.items()}
        state["backbone.fpn2.0.weight"] = torch.zeros(192, 192, 2, 2)
        state["decode_head.conv_seg.weight"] = torch.zeros(9, 192, 1, 1)
        torch.save({"state_dict": state, "meta": {"iter": 100}}, path)
    elif layout == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        path = tmp_path / "folder"
        unip_hub.unip_vit_tiny(weights=official_tiny[0]).save_pretrained(path)
    assert _same_weights(unip_hub.unip_vit_tiny(weights=path), sd)


def test_weights_dir_env(tmp_path, official_tiny, hf_cache, offline, monkeypatch):
    path, sd = official_tiny
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / FILE).write_bytes(path.read_bytes())
    monkeypatch.setenv(resolve.ENV_WEIGHTS_DIR, str(tmp_path / "w"))
    for weights in ("mae_large", unip_hub.Weights.MAE_LARGE, "unip_vit_tiny.mae_large"):
        model = unip_hub.unip_vit_tiny(weights=weights)
        assert _same_weights(model, sd) and model.pretrained_cfg["teacher_layer"] == 18
    assert _same_weights(unip_hub.unip_vit_tiny(pretrained=True), sd)


def test_offline_with_prefilled_cache(official_tiny, hf_cache, offline):
    path, sd = official_tiny
    _fill_hf_cache(hf_cache, path)
    assert _same_weights(unip_hub.unip_vit_tiny(weights="mae_large", last_heads="distilled"), sd)


def test_offline_with_empty_cache_names_repo_file_and_remedies(hf_cache, offline):
    with pytest.raises(WeightsNotFoundError) as err:
        unip_hub.unip_vit_tiny(weights="mae_large")
    msg = str(err.value)
    for needle in (REPO, FILE, "UNIP_WEIGHTS_DIR", "weights=", "huggingface-cli download"):
        assert needle in msg


def test_unreachable_hub_is_an_error_not_random_weights(hf_cache, monkeypatch):
    def fail(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("connection refused")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with pytest.raises(WeightsNotFoundError, match="could not download"):
        unip_hub.unip_vit_tiny(weights="ibot_large")


def test_download_then_hash_mismatch_evicts(official_tiny, hf_cache, monkeypatch, with_sha):
    path, sd = official_tiny
    calls = []

    def fake_download(repo_id, filename, revision=None, cache_dir=None, force_download=False, **kw):
        calls.append((repo_id, filename, revision))
        return str(_fill_hf_cache(hf_cache, path)) if not (hf_cache / "models--casiatao--UNIP").exists() else \
            str(next(hf_cache.rglob(filename)))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with_sha(sha256sum(path))
    assert _same_weights(unip_hub.unip_vit_tiny(weights="mae_large"), sd)
    assert calls == [(REPO, FILE, "main")]
    assert _same_weights(unip_hub.unip_vit_tiny(weights="mae_large"), sd)  # now served from the cache
    assert len(calls) == 1
    with_sha("0" * 64)
    with pytest.raises(CheckpointError, match="sha256"):
        unip_hub.unip_vit_tiny(weights="mae_large")
    assert not list(hf_cache.rglob(FILE)) and not list((hf_cache / "models--casiatao--UNIP" / "blobs").iterdir())


def test_hash_mismatch_in_weights_dir_is_rejected_but_not_deleted(tmp_path, official_tiny, monkeypatch, with_sha):
    path, _ = official_tiny
    (tmp_path / FILE).write_bytes(path.read_bytes())
    monkeypatch.setenv(resolve.ENV_WEIGHTS_DIR, str(tmp_path))
    with_sha("f" * 64)
    with pytest.raises(CheckpointError, match="corrupt, truncated or not the released one"):
        unip_hub.unip_vit_tiny(weights="mae_large")
    assert (tmp_path / FILE).exists()


def test_truncated_and_empty_files(tmp_path, official_tiny):
    data = official_tiny[0].read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "trunc.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    for name in ("trunc.pth", "empty.pth", "trunc.safetensors"):
        with pytest.raises(CheckpointError, match=r"truncated|empty|corrupt"):
            unip_hub.unip_vit_tiny(weights=tmp_path / name)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['UNIP_TEST_MARKER']}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, monkeypatch, official_tiny):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("UNIP_TEST_MARKER", str(marker))
    evil = tmp_path / "evil.pth"
    torch.save({"model": official_tiny[1], "payload": _Exploit()}, evil)
    with pytest.raises(CheckpointError, match="refusing"):
        unip_hub.unip_vit_tiny(weights=evil)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(CheckpointError):
        read_checkpoint(raw)
    assert not marker.exists()


def test_wrong_keys_and_shapes_are_named(tmp_path, official_tiny):
    _, sd = official_tiny
    broken = dict(sd)
    del broken["blocks.3.attn.qkv.weight"]
    broken["blocks.0.extra.weight"] = torch.zeros(1)
    torch.save({"model": broken}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        unip_hub.unip_vit_tiny(weights=tmp_path / "broken.pth")
    assert "blocks.3.attn.qkv.weight" in str(err.value) and "blocks.0.extra.weight" in str(err.value)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        unip_hub.unip_vit_small(weights=official_tiny[0])
    torch.save({"optimizer": {}, "epoch": 3}, tmp_path / "nomodel.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint layout"):
        unip_hub.unip_vit_tiny(weights=tmp_path / "nomodel.pth")


def test_unknown_names_and_missing_files():
    with pytest.raises(ValueError, match="unknown weights"):
        unip_hub.unip_vit_tiny(weights="dino_base")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        unip_hub.unip_vit_tiny(weights="/nonexistent/unip.pth")
    with pytest.raises(ValueError, match="belong to unip_vit_base"):
        unip_hub.unip_vit_tiny(weights="unip_vit_base.mae_large")


# ------------------------------------------------------------------------------------ distilled head count
RESEARCH_ARGS = dict(model="unip_vit_small_patch16", teacher_model="vit_large", intermediate=18, last_heads=16,
                     use_dino=False, teacher_path="/ckpt/mae_pretrain_vit_large.pth", batch_size=256)


def _last_block_heads(model) -> int:
    return model.blocks[-1].attn.num_heads


def test_distilled_heads_read_from_a_renamed_files_args(tmp_path):
    """A renamed download (no registry match) still records args.last_heads = 16."""
    path = tmp_path / "student_final.pth"
    sd = make_official_checkpoint(path, args=RESEARCH_ARGS)
    model = unip_hub.unip_vit_tiny(weights=path, last_heads="distilled")
    assert _last_block_heads(model) == 16 and model.distilled_last_heads == 16 and _same_weights(model, sd)
    assert model.pretrained_cfg["distillation"] == {"last_heads": 16, "teacher": "vit_large", "teacher_layer": 18,
                                                    "student": "unip_vit_small_patch16", "source": "checkpoint args"}
    assert _last_block_heads(unip_hub.unip_vit_tiny(weights=path)) == 3  # default: standard heads (fine-tuning)


def test_dino_b_student_with_12_last_heads(tmp_path):
    path = tmp_path / "checkpoint-99.pth"
    args = {**RESEARCH_ARGS, "teacher_model": "vit_base", "intermediate": 9, "last_heads": 12, "use_dino": True}
    make_official_checkpoint(path, last_heads=12, args=args)
    model = unip_hub.unip_vit_tiny(weights=path, last_heads="distilled")
    assert _last_block_heads(model) == 12
    record = model.pretrained_cfg["distillation"]
    assert (record["teacher"], record["teacher_layer"], record["last_heads"]) == ("vit_base (DINO)", 9, 12)


def test_checkpoint_args_come_before_the_registry(tmp_path):
    """An official file name whose args say otherwise: the file's own record wins."""
    path = tmp_path / "unip_vit_tiny_by_mae_large.pth"
    make_official_checkpoint(path, last_heads=12, args={**RESEARCH_ARGS, "last_heads": 12})
    assert _last_block_heads(unip_hub.unip_vit_tiny(weights=path, last_heads="distilled")) == 12


def test_file_name_is_the_last_resort(tmp_path):
    path = tmp_path / "my_unip_vit_tiny_by_dino_base_ep50.pth"
    make_official_checkpoint(path, last_heads=12, with_args=False)
    model = unip_hub.unip_vit_tiny(weights=path, last_heads="distilled")
    assert _last_block_heads(model) == 12 and model.pretrained_cfg["distillation"]["source"] == "file name"


@pytest.mark.parametrize("args", [None, {"model": "vit_large_patch16", "input_size": 224}])
def test_nothing_records_it_is_a_clear_error(tmp_path, args):
    """No args (or a teacher file's args without last_heads), no registry entry, no telling name."""
    path = tmp_path / "weights.pth"
    make_official_checkpoint(path, args=args, with_args=args is not None)
    with pytest.raises(ValueError, match=r"weights\.pth records none .*pass last_heads=<int>"):
        unip_hub.unip_vit_tiny(weights=path, last_heads="distilled")
    assert _last_block_heads(unip_hub.unip_vit_tiny(weights=path, last_heads=16)) == 16  # the explicit way works


def test_convert_and_info_show_the_record(tmp_path, capsys):
    from unip_hub.cli import main

    path = tmp_path / "checkpoint-99.pth"
    make_official_checkpoint(path, last_heads=12, args={**RESEARCH_ARGS, "last_heads": 12, "teacher_model": "vit_base",
                                                       "intermediate": 9})
    assert main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == "unip_vit_tiny" and info["distillation"]["last_heads"] == 12
    assert main(["convert", str(path), str(tmp_path / "hf")]) == 0
    assert "distilled last-block heads: 12 (from the checkpoint args)" in capsys.readouterr().out
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["distilled_last_heads"] == 12 and config["pretrained_cfg"]["distillation"]["teacher_layer"] == 9
    assert "from vit_base layer 9, last block with 12 heads" in (tmp_path / "hf" / "README.md").read_text()
    folder = unip_hub.unip_vit_tiny(weights=tmp_path / "hf", last_heads="distilled")
    assert _last_block_heads(folder) == 12 and folder.pretrained_cfg["distillation"]["source"] == "checkpoint args"


def test_analysis_loader_reads_the_same_record(tmp_path):
    """``unip attention-patterns --last-heads distilled`` (hub.teachers.load_vit) uses the same sources."""
    from unip_hub.hub.teachers import load_vit

    path = tmp_path / "checkpoint-99.pth"
    make_official_checkpoint(path, last_heads=12, args={**RESEARCH_ARGS, "last_heads": 12})
    assert _last_block_heads(load_vit(path, last_heads="distilled")) == 12
    bare = tmp_path / "weights.pth"
    make_official_checkpoint(bare, with_args=False)
    with pytest.raises(ValueError, match="does not record a distilled head count"):
        load_vit(bare, last_heads="distilled")


def test_own_distill_runs_default_to_the_teachers_heads(tmp_path):
    """``unip distill`` saves last_heads=None for "the teacher's count": the teacher's name tells it."""
    ours = dict(teacher="/w/mae_pretrain_vit_large.pth", teacher_arch="vit_large", teacher_layer=18,
                model="unip_vit_tiny", last_heads=None)
    path = tmp_path / "checkpoint-099.pth"
    make_official_checkpoint(path, args=ours)
    model = unip_hub.unip_vit_tiny(weights=path, last_heads="distilled")
    assert _last_block_heads(model) == 16
    assert model.pretrained_cfg["distillation"]["teacher_layer"] == 18
    unknown = tmp_path / "run2.pth"
    make_official_checkpoint(unknown, args={**ours, "teacher_arch": None, "teacher": "/w/teacher.pth"})
    with pytest.raises(ValueError, match="records none"):
        unip_hub.unip_vit_tiny(weights=unknown, last_heads="distilled")
