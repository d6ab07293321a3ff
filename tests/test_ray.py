"""``unip segment --engine ray``: a pool of Ray actors writes exactly the outputs of the plain run, and a re-run
skips the inputs that are done. One local Ray session (2 CPUs) serves every test of this module."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'unip[ray]')")
pytest.importorskip("scipy", reason="temperature statistics need scipy (pip install 'unip[thermal]')")

from helpers.segmenters import CLASSES, PALETTE, tiny_segmenter

from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
from unip_hub.hub.segmenters import load_segmenter
from unip_hub.inference.outputs import SegmentSettings, segment_files
from unip_hub.scale.ray import add_engine_arguments, outputs_done, segment_command, segment_with_ray

OPTIONS = {"mode": "whole"}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")  # Ray's own option renames


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A checkpoint and a folder of inputs: 8-bit, 16-bit counts, degC arrays, a sub-folder, two inputs with
    the same stem (their names keep the suffix) and one corrupt file."""
    root = tmp_path_factory.mktemp("archive")
    model = save_segmenter_checkpoint(tiny_segmenter(img_size=64, class_names=CLASSES, palette=PALETTE),
                                      root / "seg.pth")
    src = root / "frames"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        celsius = (20 + 15 * rng.random((48, 64))).astype(np.float32)
        celsius[10:20, 10 + 5 * i: 30 + 5 * i] = 70.0  # a hot block
        np.save(src / f"flight_{i}.npy", celsius)
    Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8)).save(src / "sub" / "gray.png")
    Image.fromarray(rng.integers(7000, 9000, (40, 56)).astype(np.uint16)).save(src / "sub" / "counts.png")
    Image.fromarray(rng.integers(0, 256, (32, 48), dtype=np.uint8)).save(src / "flight_0.png")  # stem clash
    (src / "broken.png").write_bytes(b"not a png at all")
    return model, src


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _strip(record: dict, folder: Path) -> dict:
    """A record with its output paths relative to ``folder`` (the two runs write to different folders)."""
    return {k: (Path(v).relative_to(folder).as_posix() if isinstance(v, str) and v.startswith(str(folder)) else v)
            for k, v in record.items()}


def test_ray_writes_exactly_the_plain_runs_outputs_and_resumes(ray_session, archive, tmp_path):
    model_path, src = archive
    settings = SegmentSettings(progress=False, hot_above=60.0, min_area=4)
    plain, distributed = tmp_path / "plain", tmp_path / "ray"
    expected = segment_files(load_segmenter(model_path, aux=False), [src], plain, settings, **OPTIONS)  # unip segment
    files = _files(plain)
    assert len(files) == 6 * 3 + 3 * 3  # 3 PNG kinds per input; degC frames also thermal + JSON + CSV

    # a killed Ray run: two inputs done, one stopped before its temperature table, the rest not started
    done = [k for k in files if Path(k).stem in ("flight_2", "counts")]
    partial = [f"{kind}/flight_1.png" for kind in settings.kinds]
    for key in done + partial:
        (distributed / key).parent.mkdir(parents=True, exist_ok=True)
        (distributed / key).write_bytes(files[key])
        os.utime(distributed / key, (1_000_000_000, 1_000_000_000))
    args = argparse.Namespace(inputs=[str(src)], model=str(model_path), out=str(distributed), video=False,
                              runtime="torch", precision="fp32", arch=None, num_classes=None, head=None, neck=None,
                              num_workers=2, ray_address=None, device="cpu")
    model, records = segment_command(args, settings, {}, OPTIONS)  # unip segment --engine ray: segment_with_ray

    assert _files(distributed) == files  # the same files under the same names, byte for byte
    assert all((distributed / key).stat().st_mtime == 1_000_000_000 for key in done)  # done inputs untouched
    skipped = [Path(r["input"]).name for r in records if r.get("skipped")]
    assert sorted(skipped) == ["counts.png", "flight_2.npy"]
    fresh = [(_strip(r, distributed), _strip(e, plain)) for r, e in zip(records, expected) if not r.get("skipped")]
    assert len(fresh) == 5 and all(r == e for r, e in fresh)  # flight_0 .npy/.png, flight_1, sub/gray, broken
    assert {Path(r["input"]).name: r.get("hotspots") for r, _ in fresh} == {
        "flight_0.npy": 1, "flight_0.png": None, "flight_1.npy": 1, "gray.png": None, "broken.png": None}
    assert "broken.png" in next(r["error"] for r in records if "error" in r)
    assert model.num_classes == len(CLASSES)  # the command's summary line describes the checkpoint


def test_unip_segment_engine_ray_on_the_command_line(ray_session, archive, tmp_path, capsys):
    from unip_hub.cli import main

    model_path, src = archive
    common = [str(src / "sub"), "--model", str(model_path), "--mode", "whole", "--quiet", "--json"]
    assert main(["segment", *common, "--out", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    assert main(["segment", *common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--num-workers", "2"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert sorted(Path(r["input"]).name for r in records) == ["counts.png", "gray.png"]
    assert _files(tmp_path / "ray") == _files(tmp_path / "plain")


def test_outputs_done_asks_about_temperatures_only_when_the_table_is_missing(tmp_path):
    settings = SegmentSettings(kinds=("masks",), progress=False)
    assert not outputs_done(tmp_path, "a", settings, lambda: False)
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"x")
    asked = []
    assert outputs_done(tmp_path, "a", settings, lambda: asked.append(1) or False)  # 8-bit input: no table due
    assert not outputs_done(tmp_path, "a", settings, lambda: True)  # radiometric: thermal/ and stats/ missing
    assert not outputs_done(tmp_path, "a", settings)  # cannot tell: not done
    assert outputs_done(tmp_path, "a", SegmentSettings(kinds=("masks",), thermal=False))
    assert asked == [1]


def test_engine_arguments_parse():
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    args = parser.parse_args(["--engine", "ray", "--num-workers", "3", "--ray-address", "auto"])
    assert (args.engine, args.num_workers, args.ray_address) == ("ray", 3, "auto")
    assert parser.parse_args([]).engine == "local"
    with pytest.raises(SystemExit):
        parser.parse_args(["--engine", "spark"])


def test_bad_worker_count_is_refused_before_ray_starts(archive, tmp_path):
    with pytest.raises(ValueError, match="num_workers"):
        segment_with_ray(archive[0], [archive[1]], tmp_path, num_workers=0)
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir())) == "[]"


def test_the_command_refuses_what_the_ray_engine_does_not_run(archive, tmp_path):
    base = dict(inputs=[str(archive[1])], model=str(archive[0]), out=str(tmp_path), video=False, runtime="torch",
                precision="fp32", arch=None, num_classes=None, head=None, neck=None, num_workers=2, ray_address=None,
                device="cpu")
    with pytest.raises(ValueError, match="videos"):
        segment_command(argparse.Namespace(**{**base, "inputs": ["clip.mp4"]}), None, {}, {})
    with pytest.raises(ValueError, match="torch fp32"):
        segment_command(argparse.Namespace(**{**base, "runtime": "onnxruntime"}), None, {}, {})
