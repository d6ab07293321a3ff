"""What the app does, as plain functions (the page and its API call these; the tests call them directly).

:func:`file_values` reads a dropped file and reports what it holds (kind, size, temperature range and its own
calibration: a FLIR R-JPEG's emissivity, reflected temperature and distance; the counts calibration the model
stores). :func:`analyse` segments one image through the predictor's raw door and writes the outputs of
``unip segment`` for it (:func:`unip_hub.inference.outputs.output_plan`, all or none): the overlay (with the
temperature colour bar and class legend for radiometric inputs), the index mask PNG and the per-class / per-region
temperature table as JSON and CSV; hotspots are the regions above the threshold. A detector checkpoint gives the
outputs of ``unip detect`` instead (:func:`unip_hub.detection.outputs.detect_files`: boxes, a per-box table with
temperatures, COCO-results JSON). A short video goes through the video pipeline
(:func:`unip_hub.inference.video.segment_video`, :func:`unip_hub.detection.outputs.detect_video`).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unip_hub.app.model_choice import load_choice

__all__ = ["TABLE_COLUMNS", "Analysis", "AppOptions", "analyse", "file_values"]

TABLE_COLUMNS = ("level", "id", "name", "area", "min", "mean", "max", "p95", "hot")
"""The page's table columns (the CSV download has all of :data:`unip_hub.inference.stats.CSV_FIELDS`)."""

MAX_VIDEO_FRAMES = 300


@dataclass
class AppOptions:
    """The form's settings: the input scaling and calibration options of ``unip segment``, and the statistics.

    Attributes:
        scaling: Input scaling spec (``"percentile 0.5/99.5"``, ``"window 10..40 degC"``, ``"8-bit"``); empty: the
            model's stored one.
        unit: Unit of float frames: ``auto``, ``celsius``, ``kelvin``.
        emissivity: FLIR R-JPEG emissivity; ``None``: the file's.
        reflected_temperature: FLIR R-JPEG reflected apparent temperature, degC; ``None``: the file's.
        object_distance: FLIR R-JPEG object distance, metres; ``None``: the file's.
        counts_to_celsius: ``(gain, offset)`` of 16-bit counts; ``None``: the model's stored calibration.
        hot_above: Hotspot threshold (region max, degC); ``None``: no hotspots.
        min_area: Smallest region in the table, pixels.
        mode: ``"whole"`` or ``"slide"`` inference.
        alpha: Opacity of the class colours in the gray overlay.
    """

    scaling: str | None = None
    unit: str = "auto"
    emissivity: float | None = None
    reflected_temperature: float | None = None
    object_distance: float | None = None
    counts_to_celsius: tuple[float, float] | None = None
    hot_above: float | None = None
    min_area: int = 1
    mode: str = "whole"
    alpha: float = 0.5

    def calibration(self) -> Any:
        """The :class:`~unip_hub.data.frame.Calibration` of these settings."""
        from unip_hub.data.frame import Calibration

        return Calibration(self.unit, self.counts_to_celsius, self.emissivity, self.reflected_temperature,
                           self.object_distance)


@dataclass
class Analysis:
    """The result of one analysis.

    Attributes:
        picture: The overlay shown on the page (``thermal/`` with colour bar and legend for radiometric inputs,
            else ``overlay/``); a video's ``overlay.mp4`` for videos.
        table: Rows of ``columns``: classes, then regions (:data:`TABLE_COLUMNS`); one row per box for a detector.
        hotspots: The regions above ``hot_above``.
        downloads: Mask PNG, JSON and CSV (what exists for the input).
        summary: Markdown for the page.
        record: The ``unip segment`` (``unip detect``) record of the input.
        columns: The table's columns.
    """

    picture: Path
    table: list[list[Any]]
    hotspots: list[dict[str, Any]]
    downloads: list[Path]
    summary: str
    record: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = TABLE_COLUMNS


def _rounded(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def file_values(path: str | os.PathLike, model: str | None = None) -> dict[str, Any]:
    """What a file holds and its own calibration, for the form.

    Args:
        path: The dropped file.
        model: The model choice, whose stored counts calibration applies to 16-bit counts (optional).

    Returns:
        ``{"file", "kind", "size", "temperatures" ([min, max] degC or None), "emissivity",
        "reflected_temperature", "object_distance", "counts_to_celsius"}``; a video gives ``kind: "video"``.

    Raises:
        ValueError: An unreadable file (one line naming it).
    """
    from unip_hub.data.radiometric import read_radiometric
    from unip_hub.inference.video import is_video

    path = Path(path)
    values: dict[str, Any] = {"file": path.name, "kind": "video", "size": None, "temperatures": None,
                              "emissivity": None, "reflected_temperature": None, "object_distance": None,
                              "counts_to_celsius": None}
    if is_video(path):
        return values
    stored = None
    if model:
        stored = getattr(load_choice(model).model, "counts_to_celsius", None)
    from unip_hub.data.frame import Calibration

    frame = read_radiometric(path, Calibration(counts_to_celsius=tuple(stored) if stored else None))
    import numpy as np

    params = frame.params or {}
    finite = frame.celsius[np.isfinite(frame.celsius)] if frame.celsius is not None else np.empty(0)
    values.update(kind=frame.kind, size=list(frame.shape),
                  temperatures=[round(float(finite.min()), 2), round(float(finite.max()), 2)] if finite.size else None,
                  emissivity=_rounded(params.get("emissivity")),
                  reflected_temperature=_rounded(params.get("reflected_temperature")),
                  object_distance=_rounded(params.get("object_distance")),
                  counts_to_celsius=[params["gain"], params["offset"]] if "gain" in params else
                  (list(stored) if stored else None))
    return values


def _hotspot_lines(hotspots: list[dict[str, Any]], hot_above: float | None) -> list[str]:
    if hot_above is None:
        return ["Set a hotspot threshold to flag regions hotter than it."]
    if not hotspots:
        return [f"No region is hotter than {hot_above:g} °C."]
    lines = [f"**{len(hotspots)} hotspot(s) above {hot_above:g} °C:**"]
    for r in hotspots[:20]:
        y0, x0, y1, x1 = r["bbox"]
        lines.append(f"- {r['name']} region {r['id']}: max {r['max']:.1f} °C, mean {r['mean']:.1f} °C, "
                     f"{r['area']} px, box y {y0}..{y1}, x {x0}..{x1}")
    return lines


def _predictor(loaded: Any, options: AppOptions) -> Any:
    """The task's predictor with the form's input scaling and calibration."""
    if loaded.task == "detection":
        from unip_hub.detection.predict import DetectionPredictor as Predictor
    else:
        from unip_hub.inference.predictor import Predictor
    return Predictor(loaded.model, scaling=options.scaling or None, calibration=options.calibration())


def analyse(path: str | os.PathLike, model: str | None = None, options: AppOptions | None = None,
            out_root: str | os.PathLike | None = None) -> Analysis:
    """Segments one dropped file and writes its outputs (see the module docstring).

    Args:
        path: An image (8/16-bit PNG/TIFF, FLIR R-JPEG, float TIFF/NPY) or a short video.
        model: The model choice (:func:`unip_hub.app.model_choice.resolve_choice`).
        options: The form's settings.
        out_root: Where each analysis gets its own folder (default: the system's temporary folder).

    Raises:
        ValueError: An unreadable file, a bad setting or an unusable model (one line saying what to change).
    """
    from unip_hub.inference.video import is_video

    options = options or AppOptions()
    if path is None or not Path(path).is_file():
        raise ValueError("drop a thermal image (PNG/TIFF/FLIR R-JPEG/NPY) or a short video first")
    path = Path(path)
    loaded = load_choice(model)
    predictor = _predictor(loaded, options)
    out_dir = Path(out_root or tempfile.gettempdir()) / "unip-app" / uuid.uuid4().hex[:12]
    if is_video(path):
        return _analyse_video(path, predictor, options, out_dir, loaded.task)
    if loaded.task == "detection":
        return _analyse_boxes(path, predictor, options, out_dir)
    return _analyse_image(path, loaded.model, predictor, options, out_dir)


def _analyse_image(path: Path, model: Any, predictor: Any, options: AppOptions, out_dir: Path) -> Analysis:
    from unip_hub.inference.outputs import SegmentSettings, output_plan, write_all_or_none
    from unip_hub.inference.render import palette_array
    from unip_hub.inference.stats import csv_rows
    from unip_hub.models.slide import InferenceOptions

    settings = SegmentSettings(alpha=options.alpha, progress=False, min_area=options.min_area,
                               hot_above=options.hot_above)
    prepared = predictor.set_image(path)  # the raw door: read, scaled and normalised once
    mask = predictor.predict_torch(prepared.tensor, InferenceOptions(mode=options.mode))[0].numpy()  # (H, W)
    colours = palette_array(model.num_classes, model.palette)
    plan, stats = output_plan(model, prepared.frame, prepared.gray, mask, out_dir, path.stem, settings, colours)
    written = {kind: Path(p) for kind, p in write_all_or_none(plan).items()}
    record = {"input": str(path), "size": list(prepared.size), **{k: str(p) for k, p in written.items()}}
    names = list(model.class_names or [])
    present = sorted(set(mask.ravel().tolist()))
    classes = ", ".join(names[c] if c < len(names) else f"class_{c}" for c in present)
    lines = [f"**{path.name}**: {prepared.frame.kind}, {prepared.size[1]}×{prepared.size[0]} px; classes: {classes}."]
    if not stats:
        lines.append("No temperatures in this file (an 8-bit picture or uncalibrated counts): the table needs a "
                     "radiometric file (FLIR R-JPEG, float TIFF/NPY in °C or K) or a counts calibration.")
        return Analysis(written["overlay"] if "overlay" in written else written["color"], [], [],
                        [written["masks"]], "\n\n".join(lines), record)
    hotspots = [r for r in stats["regions"] if r["hot"]]
    record["hotspots"] = len(hotspots)
    table = [[_rounded(row.get(c)) for c in TABLE_COLUMNS] for row in csv_rows(stats)]
    lines += _hotspot_lines(hotspots, options.hot_above)
    summary = lines[0] + "\n\n" + "\n".join(lines[1:])
    return Analysis(written["thermal"], table, hotspots,
                    [written["masks"], written["stats_json"], written["stats_csv"]], summary, record)


def _analyse_boxes(path: Path, predictor: Any, options: AppOptions, out_dir: Path) -> Analysis:
    """A detector's outputs (``unip detect``'s: overlay with boxes, per-box CSV, COCO-results JSON)."""
    import csv

    from unip_hub.detection.outputs import CSV_FIELDS, DetectSettings, detect_files

    record = detect_files(predictor, [path], out_dir, DetectSettings(options.hot_above, progress=False))[0]
    if "error" in record:
        raise ValueError(record["error"])
    with open(record["csv"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    hotspots = [r for r in rows if r.get("hot") == "True"]
    lines = [f"**{path.name}**: {len(rows)} detection(s)."]
    if "hot" in record:
        lines.append(f"**{len(hotspots)} box(es) hotter than {options.hot_above:g} °C.**" if options.hot_above
                     is not None else "Set a hotspot threshold to flag boxes hotter than it.")
    table = [[r.get(c) for c in CSV_FIELDS] for r in rows]
    return Analysis(Path(record["overlay"]), table, hotspots, [Path(record["csv"]), out_dir / "detections.json"],
                    "\n\n".join(lines), record, CSV_FIELDS)


def _analyse_video(path: Path, predictor: Any, options: AppOptions, out_dir: Path, task: str) -> Analysis:
    from unip_hub.inference.video import VideoSettings, segment_video
    from unip_hub.models.slide import InferenceOptions

    video = VideoSettings(min_area=options.min_area, hot_above=options.hot_above, alpha=options.alpha,
                          progress=False, max_frames=MAX_VIDEO_FRAMES)
    if task == "detection":
        from unip_hub.detection.outputs import detect_video

        record = detect_video(predictor, path, out_dir, video, options.hot_above)
    else:
        record = segment_video(predictor, path, out_dir, InferenceOptions(mode=options.mode), video)
    summary = (f"**{path.name}**: {record['frames']} frame(s) analysed (at most {MAX_VIDEO_FRAMES}); the per-frame "
               "table (with temperatures, where the video holds them) is the CSV download.")
    return Analysis(Path(record["video"]), [], [], [Path(record["stats"])], summary, record)
