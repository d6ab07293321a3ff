"""The shared helpers: atomic writes leave the old file or the whole new one, never a part; one file lister."""

from __future__ import annotations

import pytest
import torch

from unip_hub.utils import (
    atomic_dir,
    atomic_path,
    list_files,
    save_torch_atomic,
    write_text_atomic,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_path_keeps_suffix_and_replaces(tmp_path):
    target = tmp_path / "sub" / "mask.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and not _leftovers(target.parent)


def test_atomic_path_failure_keeps_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and not _leftovers(tmp_path)


def test_keyboard_interrupt_cleans_up(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("x")
        raise KeyboardInterrupt
    assert not target.exists() and not list(tmp_path.iterdir())


def test_text_bytes_torch_and_safetensors(tmp_path):
    assert write_text_atomic("héllo", tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    sd = {"w": torch.arange(6.0).reshape(2, 3)}
    obj = torch.load(save_torch_atomic({"model": sd, "it": 3}, tmp_path / "c.pth"), weights_only=True)
    assert obj["it"] == 3 and torch.equal(obj["model"]["w"], sd["w"])
    from safetensors.torch import load_file

    assert torch.equal(load_file(save_torch_atomic(sd, tmp_path / "w.safetensors"))["w"], sd["w"])
    assert not _leftovers(tmp_path)


def test_atomic_dir(tmp_path):
    out = tmp_path / "folder"
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
        assert not out.exists()
    assert (out / "config.json").read_text() == "{}"
    with pytest.raises(FileExistsError, match="not empty"), atomic_dir(out):
        pass
    with pytest.raises(ValueError), atomic_dir(out, overwrite=True) as tmp:
        (tmp / "partial").write_text("x")
        raise ValueError("failed half way")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "model.safetensors").write_bytes(b"1")
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    assert not _leftovers(tmp_path)


def test_list_files(tmp_path):
    for name in ("b.PNG", "a.tiff", "sub/c.jpg", "notes.txt", ".hidden.png", ".tmp/d.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    names = [p.relative_to(tmp_path).as_posix() for p in list_files(tmp_path)]
    assert names == ["a.tiff", "b.PNG", "sub/c.jpg"]
    assert [p.name for p in list_files(tmp_path, recursive=False)] == ["a.tiff", "b.PNG"]
    assert len(list_files([tmp_path, tmp_path / "notes.txt"], limit=10)) == 4
    assert len(list_files(tmp_path, limit=1)) == 1
    with pytest.raises(FileNotFoundError, match="missing"):
        list_files(tmp_path / "missing")
