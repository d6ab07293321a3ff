"""``unip app``: the app's functions, its Gradio API (``gradio_client``) and the page in a real headless Chromium.

One app server (a free 127.0.0.1 port, analytics off, no share link) serves the API and the browser tests.
``python tests/test_app.py --screenshot docs/app_screenshot.png`` takes the README's screenshot with the same
browser set-up.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
pytest.importorskip("scipy", reason="temperature statistics need scipy (pip install 'unip[thermal]')")

from helpers.samples import SAMPLES
from helpers.segmenters import CLASSES, PALETTE, tiny_segmenter
from helpers.training import free_port

from unip_hub.app.actions import AppOptions, analyse, file_values
from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
from unip_hub.inference.stats import CSV_FIELDS

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # Gradio's own pandas 3 deprecations

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A checkpoint, a degC frame with a hot block, 16-bit counts, an 8-bit picture and a corrupt PNG."""
    root = tmp_path_factory.mktemp("app")
    model = save_segmenter_checkpoint(tiny_segmenter(img_size=64, class_names=CLASSES, palette=PALETTE),
                                      root / "seg.pth")
    rng = np.random.default_rng(0)
    celsius = (20 + 10 * rng.random((48, 64))).astype(np.float32)
    celsius[8:20, 10:30] = 75.0
    np.save(root / "roof.npy", celsius)
    Image.fromarray(rng.integers(29000, 31000, (40, 56)).astype(np.uint16)).save(root / "counts.png")
    Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8)).save(root / "gray.png")
    (root / "broken.png").write_bytes(b"this is not an image")
    return {"model": str(model), **{p.stem: p for p in root.iterdir() if p.suffix in (".npy", ".png")}}


def _csv(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(Path(path).read_text())))


def test_analyse_writes_the_outputs_of_unip_segment_with_the_table_and_hotspots(files, tmp_path):
    result = analyse(files["roof"], files["model"], AppOptions(hot_above=60.0, min_area=4), tmp_path)
    assert result.picture.parent.name == "thermal" and result.picture.is_file()  # colour bar + legend version
    mask, as_json, as_csv = result.downloads
    assert Image.open(mask).size == (64, 48) and mask.parent.name == "masks"
    stats = json.loads(as_json.read_text())
    rows = _csv(as_csv)
    assert list(rows[0]) == list(CSV_FIELDS) and len(rows) == len(result.table) == len(stats["classes"]) + len(
        stats["regions"])
    assert stats["hot_above"] == 60.0 and stats["hotspots"] == len(result.hotspots) >= 1
    assert all(r["max"] > 60.0 for r in result.hotspots) and "hotspot" in result.summary
    assert max(float(r["max"]) for r in rows) == 75.0


def test_file_values_and_calibration_fields(files, tmp_path):
    assert file_values(files["roof"])["temperatures"] == [20.0, 75.0]
    counts = file_values(files["counts"])
    assert counts["kind"] == "counts" and counts["temperatures"] is None
    calibrated = analyse(files["counts"], files["model"], AppOptions(counts_to_celsius=(0.01, -273.15)), tmp_path)
    assert calibrated.table and 16.0 < float(_csv(calibrated.downloads[2])[0]["min"]) < 37.0  # 290..310 K in degC
    plain = analyse(files["gray"], files["model"], AppOptions(), tmp_path)
    assert plain.table == [] and plain.picture.parent.name == "overlay" and "No temperatures" in plain.summary
    assert [p.parent.name for p in plain.downloads] == ["masks"]


@pytest.mark.skipif(not (SAMPLES / "rjpeg" / "flir_example.jpg").is_file(), reason="shared thermal samples absent")
def test_a_flir_rjpeg_shows_its_own_calibration_and_overrides_change_temperatures(files, tmp_path):
    rjpeg = SAMPLES / "rjpeg" / "flir_example.jpg"
    values = file_values(rjpeg)
    assert values["kind"] == "flir-rjpeg" and values["emissivity"] == 0.95 and values["temperatures"][1] > 60
    own = analyse(rjpeg, files["model"], AppOptions(), tmp_path)
    darker = analyse(rjpeg, files["model"], AppOptions(emissivity=1.0), tmp_path)
    assert float(_csv(darker.downloads[2])[0]["max"]) < float(_csv(own.downloads[2])[0]["max"])


def test_a_short_video_gives_the_overlay_video_and_the_frame_table(files, tmp_path):
    pytest.importorskip("av", reason="video needs PyAV (pip install 'unip[thermal]')")
    from test_video import write_video

    frames = [np.random.default_rng(t).integers(0, 256, (48, 64), dtype=np.uint8) for t in range(5)]
    clip = write_video(tmp_path / "walk.mp4", frames)
    result = analyse(clip, files["model"], AppOptions(), tmp_path / "out")
    assert result.picture.name == "overlay.mp4" and result.picture.stat().st_size > 0
    assert result.record["frames"] == 5 and "5 frame(s)" in result.summary
    assert [p.name for p in result.downloads] == ["frames.csv"] and result.downloads[0].is_file()


def test_a_detector_checkpoint_gives_boxes_and_a_per_box_table(files, tmp_path):
    pytest.importorskip("torchvision", reason="detectors need torchvision (pip install 'unip[detection]')")
    import torch

    from unip_hub.detection import create_detector, save_detector
    from unip_hub.detection.outputs import CSV_FIELDS as BOX_FIELDS

    torch.manual_seed(0)
    det = create_detector("unip_vit_tiny", num_classes=2, class_names=["person", "car"], min_size=64, max_size=64,
                          depth=2, embed_dim=64, num_heads=2, out_channels=32,
                          detector_kwargs={"box_score_thresh": 0.0, "box_detections_per_img": 5,
                                           "rpn_pre_nms_top_n_test": 50, "rpn_post_nms_top_n_test": 20})
    model = save_detector(det.eval(), tmp_path / "det.pth")
    result = analyse(files["roof"], str(model), AppOptions(hot_above=60.0), tmp_path / "out")
    assert result.columns == BOX_FIELDS and result.picture.parent.name == "overlay" and result.picture.is_file()
    table, coco = result.downloads
    rows = _csv(table)
    assert len(rows) == len(result.table) == result.record["detections"] == len(json.loads(coco.read_text())) > 0
    assert all(r["max"] != "" for r in rows) and len(result.hotspots) == result.record["hot"]  # degC inside boxes


def test_bad_files_and_models_give_one_line_messages(files, tmp_path):
    with pytest.raises(ValueError, match=r"broken\.png"):
        analyse(files["broken"], files["model"], out_root=tmp_path)
    with pytest.raises(ValueError, match="pre-trained backbone weights"):
        analyse(files["roof"], "unip_vit_tiny.mae_large", out_root=tmp_path)
    with pytest.raises(ValueError, match="not found"):
        analyse(files["roof"], str(tmp_path / "missing.pth"), out_root=tmp_path)
    with pytest.raises(ValueError, match="drop a thermal image"):
        analyse(None, files["model"], out_root=tmp_path)
    assert not list(tmp_path.rglob("*.png"))  # nothing written for any of them


def test_unip_app_command_line():
    from unip_hub.cli import build_parser

    args = build_parser().parse_args(["app", "--host", "0.0.0.0", "--port", "8000", "--model", "m.pth"])
    assert (args.host, args.port, args.model) == ("0.0.0.0", 8000, "m.pth")


def test_old_analyses_are_removed_before_a_new_one(files):
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'unip[app]')")
    from unip_hub.app.page import _results_root

    old, fresh = (Path(tempfile.gettempdir()) / "unip-app" / name for name in ("old-test-run", "fresh-test-run"))
    for folder in (old, fresh):
        folder.mkdir(parents=True, exist_ok=True)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert _results_root() == Path(tempfile.gettempdir())
    assert not old.exists() and fresh.is_dir()
    fresh.rmdir()



@pytest.fixture(scope="module")
def server(files):
    """The app on a free local port, for the API and browser tests."""
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'unip[app]')")
    from unip_hub.app.page import launch

    port = free_port()
    demo = launch(files["model"], host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_gradio_api_runs_the_apps_functions(server, files):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    picture, table, summary, downloads, video = client.predict(
        handle_file(str(files["roof"])), files["model"], "", "auto", None, None, None, None, None, 60.0, 4, "whole",
        api_name="/segment")
    assert Image.open(picture).size[0] > 64 and video is None and "hotspot" in summary  # frame + colour bar
    assert table["headers"][:3] == ["level", "id", "name"] and any(row[-1] is True for row in table["data"])
    assert sorted(Path(p).suffix for p in downloads) == [".csv", ".json", ".png"]
    with pytest.raises(AppError, match=r"broken\.png"):
        client.predict(handle_file(str(files["broken"])), files["model"], api_name="/file_values")
    text, emissivity, *_ = client.predict(handle_file(str(files["roof"])), files["model"], api_name="/file_values")
    assert "celsius" in text and emissivity is None


def chromium_driver(download_dir: Path, size: tuple[int, int] = (1400, 1000)):
    """Headless Debian Chromium through chromedriver: no network beyond localhost, a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={download_dir / 'profile'}",
                 f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def _wait(driver, condition, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#unip-file input[type=file]").send_keys(str(path))


def _segment(driver, path: Path, hot_above: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    _upload(driver, path)
    if hot_above is not None:
        box = driver.find_element(By.CSS_SELECTOR, "#unip-hot-above input")
        box.clear()
        box.send_keys(hot_above)
    time.sleep(0.5)  # the upload's change event first
    driver.find_element(By.ID, "unip-run").click()


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian chromium / chromium-driver not installed")
def test_the_page_in_a_real_browser(server, files, tmp_path):
    pytest.importorskip("selenium", reason="selenium is not installed")
    from selenium.webdriver.common.by import By

    driver = chromium_driver(tmp_path)
    try:
        driver.get(server)
        _wait(driver, lambda d: d.find_elements(By.ID, "unip-run"))
        # a corrupt file: one readable line in the page, no stack trace
        _segment(driver, files["broken"])
        _wait(driver, lambda d: "broken.png" in d.find_element(By.TAG_NAME, "body").text)
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Traceback" not in body and "File \"" not in body
        driver.get(server)  # a fresh page; the server still serves
        _wait(driver, lambda d: d.find_elements(By.ID, "unip-run"))
        _segment(driver, files["roof"], hot_above="60")
        overlay = _wait(driver, lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, "#unip-overlay img")
                                           if e.get_attribute("src")])
        assert overlay[0].get_attribute("naturalWidth") not in (None, "0")
        _wait(driver, lambda d: "hotspot" in d.find_element(By.ID, "unip-summary").text)
        table = driver.find_element(By.ID, "unip-table").text
        assert "person" in table or "background" in table
        links = _wait(driver, lambda d: [a for a in d.find_elements(By.CSS_SELECTOR, "#unip-downloads a")
                                         if (a.get_attribute("href") or "").endswith(".csv")])
        links[0].click()
        target = tmp_path / "roof.csv"
        _wait(driver, lambda d: target.is_file() and target.stat().st_size > 0, timeout=30)
        rows = _csv(target)
        assert list(rows[0]) == list(CSV_FIELDS) and any(r["hot"] == "True" for r in rows)
        grid = driver.find_element(By.CSS_SELECTOR, "#unip-table [role=grid]")
        assert int(grid.get_attribute("aria-rowcount")) == len(rows) + 1  # the header, then one row per CSV row
        assert {r["name"] for r in rows} <= set(table.split("\n")) and "75" in table.split("\n")
    finally:
        driver.quit()


def _screenshot(path: str) -> None:
    """The README's screenshot: the app on a FLIR R-JPEG (from the shared samples) with a tiny random model."""
    from unip_hub.app.page import launch

    root = Path(tempfile.mkdtemp())
    model = save_segmenter_checkpoint(tiny_segmenter(img_size=64, class_names=CLASSES, palette=PALETTE),
                                      root / "tiny-random-weights.pth")
    port = free_port()
    demo = launch(str(model), host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    driver = chromium_driver(root, (1400, 1300))
    try:
        from selenium.webdriver.common.by import By

        driver.get(f"http://127.0.0.1:{port}/")
        _wait(driver, lambda d: d.find_elements(By.ID, "unip-run"))
        _segment(driver, SAMPLES / "rjpeg" / "flir_example.jpg", hot_above="45")
        _wait(driver, lambda d: "hotspot" in d.find_element(By.ID, "unip-summary").text)
        time.sleep(1.0)
        driver.save_screenshot(path)
    finally:
        driver.quit()
        demo.close()


if __name__ == "__main__":
    _screenshot(sys.argv[sys.argv.index("--screenshot") + 1])
