# exports: DetectSettings, box_temperatures, detection_rows, draw_detections, render_detections, detect_files
# exports: detect_video
"""``unip detect`` outputs: overlays with boxes, labels and scores, a CSV per image, one COCO-results JSON per run.

Layout under the output folder, named after each input's path relative to the folder given (the shared
:func:`unip_hub.engine.outputs.list_inputs`):

* ``overlay/<name>.png``: the boxes (class colours), ``name score`` labels and, for radiometric inputs, the
  hottest temperature inside each box, drawn with PIL over the input gray -- or, for radiometric inputs, over the
  temperatures in a colormap with a colour bar and a class legend (:func:`unip_hub.inference.render.thermal_overlay`);
* ``csv/<name>.csv``: one row per detection (:data:`CSV_FIELDS`): box, class, score and, for radiometric inputs,
  min / mean / max / p95 degC inside the box (inside the mask for Mask R-CNN) and a ``hot`` flag (max above
  ``hot_above``);
* ``detections.json``: COCO results of the whole run (``image_id`` = the input's position, ``category_id`` =
  label + 1, ``bbox`` [x, y, w, h], ``score``; ``file_name`` names the input).

Each input gets all its files or none (:func:`unip_hub.engine.outputs.write_all_or_none`), each file atomically.
Videos and folders of frames go through the video pipeline (:func:`unip_hub.inference.video.process_video`) into
``<out>/<name>/overlay.mp4`` and ``frames.csv`` (the rows above, per frame).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.utils.atomic import write_text_atomic

__all__ = ["CSV_FIELDS", "DetectSettings", "box_temperatures", "detect_files", "detection_rows", "draw_detections",
           "render_detections"]

CSV_FIELDS = ("id", "x0", "y0", "x1", "y1", "class", "name", "score", "min", "mean", "max", "p95", "hot")
_FIGURES = ("min", "mean", "max", "p95")


@dataclass
class DetectSettings:
    """What :func:`detect_files` writes.

    Attributes:
        hot_above: Detections whose hottest pixel exceeds this (degC) are flagged ``hot``; None flags none.
        overlay: Write ``overlay/<name>.png``.
        line_width: Box outline width in pixels (0: about 1/200 of the image's longer side, at least 1).
        progress: Show a progress bar.
    """

    hot_above: float | None = None
    overlay: bool = True
    line_width: int = 0
    progress: bool = True


def box_temperatures(celsius: np.ndarray, boxes: np.ndarray, masks: np.ndarray | None = None
                     ) -> list[dict[str, float | None]]:
    """min / mean / max / p95 (numpy's linear percentile) of the finite temperatures inside each box, or inside
    each mask where ``masks`` (N, H, W) bool is given; None where a box holds no finite value.

    Args:
        celsius: Temperatures (H, W) in degC.
        boxes: (N, 4) XYXY pixels; a pixel is inside when its area overlaps the box (edges rounded outwards).
        masks: Optional instance masks (N, H, W), intersected with the boxes.
    """
    celsius = np.asarray(celsius)
    h, w = celsius.shape
    out = []
    for i, box in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x1, y1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
        values = celsius[y0:y1, x0:x1]
        if masks is not None:
            values = values[np.asarray(masks[i])[y0:y1, x0:x1]]
        values = values[np.isfinite(values)].astype(np.float64)  # (n,)
        if values.size == 0:
            out.append(dict.fromkeys(_FIGURES))
            continue
        out.append({"min": round(float(values.min()), 3), "mean": round(float(values.mean()), 3),
                    "max": round(float(values.max()), 3), "p95": round(float(np.percentile(values, 95)), 3)})
    return out


def detection_rows(found: dict[str, Any], class_names: Sequence[str], celsius: np.ndarray | None = None,
                   hot_above: float | None = None) -> list[dict[str, Any]]:
    """One CSV row (:data:`CSV_FIELDS`) per detection of one image, with temperatures when ``celsius`` is given."""
    boxes = np.asarray(found["boxes"], np.float64).reshape(-1, 4)
    scores, labels = np.asarray(found["scores"]).reshape(-1), np.asarray(found["labels"]).reshape(-1)
    masks = np.asarray(found["masks"]) if "masks" in found else None
    temps = box_temperatures(celsius, boxes, masks) if celsius is not None else [{}] * len(boxes)
    rows = []
    for i, (box, score, label, figures) in enumerate(zip(boxes, scores.tolist(), labels.tolist(), temps,
                                                         strict=True)):
        top = figures.get("max")
        rows.append({"id": i, **{k: round(float(v), 2) for k, v in zip(("x0", "y0", "x1", "y1"), box, strict=True)},
                     "class": int(label), "name": class_names[int(label)], "score": round(float(score), 4),
                     **figures, "hot": bool(hot_above is not None and top is not None and top > hot_above)
                     if celsius is not None else None})
    return rows


def rows_csv(rows: list[dict[str, Any]], fields: Sequence[str] = CSV_FIELDS) -> str:
    """The rows as CSV text with a header (empty cells for missing values)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in fields} for r in rows)
    return text.getvalue()


def class_colours(model: Any, num_classes: int) -> np.ndarray:
    """(K, 3) uint8 box colours: the model's ``palette`` when it has one, else the VOC scheme without its black."""
    from unip_hub.inference.render import palette_array

    palette = getattr(model, "palette", None)
    return palette_array(num_classes, palette) if palette else palette_array(num_classes + 1)[1:]


def draw_detections(picture: np.ndarray, rows: list[dict[str, Any]], colours: np.ndarray,
                    line_width: int = 0, region: tuple[int, int] | None = None) -> np.ndarray:
    """Boxes and ``name score [max degC]`` labels drawn with PIL on an RGB picture (H, W, 3) uint8 (a copy); a row
    whose ``score`` is None (ground truth) is labelled with its name only.

    Args:
        picture: The background (the input gray as RGB, or a thermal rendering).
        rows: :func:`detection_rows` of the image.
        colours: (K, 3) uint8 class colours.
        line_width: Outline width (0: ~1/200 of the longer side of ``region``, at least 1).
        region: (H, W) of the image inside ``picture`` (a thermal rendering adds a panel at the right); labels
            stay inside it.
    """
    from PIL import Image, ImageDraw, ImageFont

    height, width = region or picture.shape[:2]
    width_px = line_width or max(1, round(max(height, width) / 200))
    image = Image.fromarray(np.ascontiguousarray(picture))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for r in sorted(rows, key=lambda r: 1.0 if r.get("score") is None else r["score"]):  # most confident on top
        colour = tuple(int(c) for c in colours[r["class"]])
        draw.rectangle([r["x0"], r["y0"], r["x1"], r["y1"]], outline=colour, width=width_px)
        text = r["name"] + (f" {r['score']:.2f}" if r.get("score") is not None else "")
        text += f" {r['max']:.1f}\u00b0C" if r.get("max") is not None else ""
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 4, bottom - top + 3
        x = min(max(r["x0"], 0), max(width - tw, 0))
        y = r["y0"] - th if r["y0"] - th >= 0 else min(r["y0"] + width_px, max(height - th, 0))
        draw.rectangle([x, y, x + tw, y + th], fill=colour)
        ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
        draw.text((x + 2 - left, y + 1 - top), text, fill=ink, font=font)
    return np.asarray(image)


def render_detections(frame: Any, gray: np.ndarray, rows: list[dict[str, Any]], colours: np.ndarray,
                      class_names: Sequence[str], line_width: int = 0,
                      bounds: tuple[float, float] | None = None) -> np.ndarray:
    """The overlay of one image: boxes over the gray input, or over its temperatures (colormap, colour bar and a
    legend of the classes) when the frame has them. ``bounds``: the colour bar's ends (default: percentiles)."""
    if frame is not None and frame.celsius is not None:
        from unip_hub.inference.render import thermal_overlay

        blank = np.zeros(gray.shape, np.uint8)  # no class fill: the boxes say it
        picture = thermal_overlay(frame.celsius, blank, colours, class_names, bounds, alpha=0.0, all_classes=True)
    else:
        picture = np.repeat(np.asarray(gray)[..., None], 3, axis=2)  # (H, W, 3)
    return draw_detections(picture, rows, colours, line_width, region=gray.shape)


def detect_files(predictor: Any, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 settings: DetectSettings | None = None, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Detects objects in every image under ``inputs`` and writes ``overlay/``, ``csv/`` and ``detections.json``.

    Args:
        predictor: A :class:`~unip_hub.detection.predict.DetectionPredictor`.
        inputs: Image files and folders (searched recursively).
        out_dir: Output folder.
        settings: Hot flag, overlay, progress.
        names: Output names of ``inputs`` when they are files listed already (default: from
            :func:`~unip_hub.engine.outputs.list_inputs`).

    Returns:
        One record per input: ``input``, ``size``, the written ``overlay`` / ``csv`` paths, ``detections`` (count)
        and ``hot`` (count, radiometric inputs); or ``input`` and ``error`` (nothing written for it).
    """
    from unip_hub.detection.evaluate import results_json
    from unip_hub.engine.outputs import list_inputs, run_files
    from unip_hub.inference.images import write_png_atomic

    settings = settings or DetectSettings()
    out = Path(out_dir)
    files, names = (list(inputs), list(names)) if names is not None else list_inputs(inputs)
    class_names = predictor.class_names
    colours = class_colours(predictor.model, len(class_names))
    results: list[dict[str, Any]] = []

    def plan_for(prepared: Any, name: str) -> tuple[dict, dict[str, Any]]:
        found = predictor.predict_torch(prepared.tensor)[0]
        rows = detection_rows(found, class_names, prepared.frame.celsius, settings.hot_above)
        text = rows_csv(rows)
        plan: dict[str, Any] = {"csv": (out / "csv" / f"{name}.csv", lambda p: write_text_atomic(text, p))}
        if settings.overlay:
            picture = render_detections(prepared.frame, prepared.gray, rows, colours, class_names,
                                        settings.line_width)
            plan["overlay"] = (out / "overlay" / f"{name}.png", lambda p: write_png_atomic(picture, p))
        entries = results_json([len(results)], [found], list(range(1, len(class_names) + 1)))
        results.append({"file_name": name, "entries": entries})
        extra = {"detections": len(rows)}
        if prepared.frame.celsius is not None:
            extra["hot"] = sum(bool(r["hot"]) for r in rows)
        return plan, extra

    records = run_files(predictor, files, plan_for, progress=settings.progress, desc="detect", names=names)
    coco = [{**entry, "file_name": r["file_name"]} for r in results for entry in r["entries"]]
    write_text_atomic(json.dumps(coco, indent=1), out / "detections.json")
    return records


def _video_sink(folder: Path, fps: float, settings: Any, class_names: Sequence[str], colours: np.ndarray,
                hot_above: float | None) -> Any:
    """The writer of detected video frames: boxes drawn on the frame (over temperatures when it has them), one
    ``frames.csv`` row per detection (:class:`~unip_hub.inference.video.VideoSink`)."""
    from unip_hub.inference.video import VideoSink

    names = list(class_names)

    class DetectionSink(VideoSink):
        def __call__(self, item: tuple[Any, np.ndarray, dict[str, Any]]) -> None:
            frame, gray, found = item
            rows = detection_rows(found, names, frame.celsius, hot_above)
            picture = render_detections(frame, gray, rows, colours, names, bounds=self.bounds(frame))
            self.write(picture, ({k: ("" if r.get(k) is None else r[k]) for k in CSV_FIELDS} for r in rows))

    return DetectionSink(folder, fps, settings, CSV_FIELDS)


def detect_video(predictor: Any, source: str | os.PathLike, out_dir: str | os.PathLike, settings: Any = None,
                 hot_above: float | None = None) -> dict[str, Any]:
    """Detects objects in a video file or a folder of frames: ``OUT/<name>/overlay.mp4`` (boxes drawn) and
    ``frames.csv`` (one row per detection and frame, with temperatures for radiometric frames), through the video
    pipeline (:func:`unip_hub.inference.video.process_video`; ``settings``: its
    :class:`~unip_hub.inference.video.VideoSettings`).

    Raises:
        ValueError: unreadable, truncated or empty input (one line naming the file; nothing is left behind).
    """
    from unip_hub.inference.video import VideoSettings, process_video

    settings = settings or VideoSettings()
    names = predictor.class_names
    colours = class_colours(predictor.model, len(names))
    return process_video(predictor, source, out_dir, settings, predictor.predict_torch,
                         lambda folder, fps: _video_sink(folder, fps, settings, names, colours, hot_above),
                         desc="detect")
