"""The weights registry: contents, lookups, and its presence in a built wheel installed in a fresh venv."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import unip_hub
from unip_hub.hub.registry import Weights, find_entry_by_filename, get_weights_entry

ROOT = Path(__file__).resolve().parents[1]


def test_six_released_checkpoints():
    names = unip_hub.list_weights()
    assert len(names) == 6
    assert {n.split(".")[0] for n in names} == {"unip_vit_tiny", "unip_vit_small", "unip_vit_base"}
    assert unip_hub.list_weights("unip_vit_large") == []
    assert unip_hub.list_models() == ["unip_vit_tiny", "unip_vit_small", "unip_vit_base", "unip_vit_large"]


@pytest.mark.parametrize("name", unip_hub.list_weights())
def test_entries_are_complete(name):
    arch, tag = name.split(".")
    e = get_weights_entry(arch, tag)
    assert e is get_weights_entry(arch, Weights(tag)) and e.name == name
    assert e.hf_repo == "casiatao/UNIP" and e.filename == f"{arch}_by_{tag}.pth"
    assert e.teacher_layer == {"mae_large": 18, "ibot_large": 21}[tag] and e.last_heads == 16
    assert e.mean == (0.3801,) * 3 and e.std == (0.1871,) * 3 and e.license == "apache-2.0"
    assert 30 < e.paper_miou_linear_probe < e.paper_miou_finetune < 70
    assert e.sha256 is None or len(e.sha256) == 64
    assert find_entry_by_filename(f"/some/dir/{e.filename}") is e


@pytest.mark.slow
def test_built_wheel_ships_the_registry(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("unip-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = json.loads(zf.read("unip_hub/hub/registry.json"))
        assert "unip_hub/cli/__init__.py" in zf.namelist()
    assert shipped == json.loads((ROOT / "weights" / "registry.json").read_text())

    env_dir = tmp_path / "fresh-venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    target = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                          text=True).strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    # torch, timm, ... come from the test environment; the package itself only from the wheel
    (target / "_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    code = (f"import unip_hub, json; assert unip_hub.__file__.startswith({str(target)!r}), unip_hub.__file__; "
            "print(json.dumps(unip_hub.list_weights()))")
    out = subprocess.run([py, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == unip_hub.list_weights()
    cli = subprocess.run([py, "-m", "unip_hub", "list"], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert "unip_vit_base.ibot_large" in cli.stdout
